"""Which backend runs: ``PYCDB_BACKEND=cffi|pure`` at import, else cffi
when it was built, else pure.

Readers and writers bind to the backend active when they are created.
``use()`` switches it for a block of code; the test suite runs every case
under both.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

NAMES = ("cffi", "pure")

_loaded: dict[str, ModuleType] = {}
_errors: dict[str, str] = {}


def load(name: str) -> ModuleType:
    """The backend module ``name``; ImportError (saying why) when it
    cannot be used."""
    if name not in NAMES:
        raise ImportError(f"PYCDB_BACKEND must be one of {', '.join(NAMES)}, not {name!r}")
    if name not in _loaded:
        if name == "cffi":
            from . import _cffi as module
        else:
            from . import _pure as module  # type: ignore[no-redef]
        _loaded[name] = module
    return _loaded[name]


def available() -> list[str]:
    """Names of the backends that import on this installation."""
    names = []
    for name in NAMES:
        try:
            load(name)
        except ImportError as exc:
            _errors[name] = str(exc)
        else:
            names.append(name)
    return names


def _initial() -> ModuleType:
    forced = os.environ.get("PYCDB_BACKEND", "")
    if forced:
        return load(forced)  # forcing cffi where it is missing is an ImportError
    try:
        return load("cffi")
    except ImportError:
        return load("pure")


impl: ModuleType = _initial()


def current() -> ModuleType:
    """The active backend module."""
    return impl


@contextlib.contextmanager
def use(name: str) -> Iterator[ModuleType]:
    """Run a block with backend ``name`` active (not thread-safe: meant
    for tests and benchmarks)."""
    global impl
    previous = impl
    impl = load(name)
    try:
        yield impl
    finally:
        impl = previous
