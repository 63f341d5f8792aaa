"""pycdb: D. J. Bernstein's constant database, and the tcprules toolkit
built on it.

``Reader`` and ``Writer`` read and write cdb files; ``pycdb.rules`` speaks
ucspi-tcp's rules language.  ``BACKEND`` names the implementation in use:
``"cffi"`` (the C core) or ``"pure"`` (the pure-Python twin, same answers).
Set ``PYCDB_BACKEND=cffi|pure`` before import to force one.
"""

from __future__ import annotations

from . import _backend
from ._version import __version__
from .errors import CorruptError, DialectError, Error, RulesSyntaxError, TooLargeError
from .reader import Reader
from .writer import Writer

__all__ = [
    "BACKEND",
    "CorruptError",
    "DialectError",
    "Error",
    "Reader",
    "RulesSyntaxError",
    "TooLargeError",
    "Writer",
    "__version__",
    "hash",
]


def hash(key: bytes | str) -> int:  # noqa: A001 - the cdb hash, as djb names it
    """djb's cdb hash of ``key`` (a ``str`` is encoded as UTF-8)."""
    from ._args import as_bytes

    return int(_backend.current().hash(as_bytes(key)))


def __getattr__(name: str) -> str:
    if name == "BACKEND":
        return str(_backend.current().NAME)
    raise AttributeError(f"module 'pycdb' has no attribute {name!r}")
