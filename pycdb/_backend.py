"""Which backend runs: ``PYCDB_BACKEND=cffi|pure``, else cffi when it
was built, else pure (with a warning).  Chosen at first use (the first
Reader, Writer, RuleSet, ``pycdb.BACKEND`` ...), so that a bad setting is
an ImportError there, which the ``pycdb`` command reports in one line.

Readers and writers bind to the backend active when they are created.
``use()`` switches it for a block of code; the test suite runs every case
under both.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from ._interface import Backend

if TYPE_CHECKING:
    # mypy checks here that both modules are what _interface declares.
    from . import _cffi, _pure

    _cffi_is_a_backend: Backend = _cffi
    _pure_is_a_backend: Backend = _pure

NAMES = ("cffi", "pure")

_loaded: dict[str, Backend] = {}
_errors: dict[str, str] = {}


def load(name: str) -> Backend:
    """The backend module ``name``; ImportError (saying why) when it
    cannot be used."""
    if name not in NAMES:
        raise ImportError(f"PYCDB_BACKEND must be one of {', '.join(NAMES)}, not {name!r}")
    if name not in _loaded:
        _loaded[name] = cast(Backend, importlib.import_module(f"{__package__}._{name}"))
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


def _initial() -> Backend:
    forced = os.environ.get("PYCDB_BACKEND", "")
    if forced:
        return load(forced)  # forcing cffi where it is missing is an ImportError
    try:
        return load("cffi")
    except ImportError as exc:
        # pip hides what setup.py printed when the compile failed; say it
        # where it will be seen.
        warnings.warn(
            f"pycdb: the C core is not available ({exc}); using the pure-Python backend, "
            "which gives the same answers more slowly. Set PYCDB_BACKEND=pure to say "
            "that this is intended.",
            RuntimeWarning,
            stacklevel=2,
        )
        return load("pure")


impl: Backend | None = None


def current() -> Backend:
    """The active backend module, chosen on the first call.  ImportError,
    saying why, when ``PYCDB_BACKEND`` names an unknown backend or one
    that is not built."""
    global impl
    if impl is None:
        impl = _initial()
    return impl


@contextlib.contextmanager
def use(name: str) -> Iterator[Backend]:
    """Run a block with backend ``name`` active (not thread-safe: meant
    for tests and benchmarks)."""
    global impl
    previous = impl
    impl = load(name)
    try:
        yield impl
    finally:
        impl = previous
