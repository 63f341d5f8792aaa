"""What a backend is: the handful of operations that need speed, declared
once.  ``pycdb._cffi`` (the C core) and ``pycdb._pure`` implement exactly
this; everything else in pycdb (naming corruption, policy, messages) is
written once above it and reaches a backend only through these names.

A backend raises pycdb's own exceptions (``CorruptError`` named through
:class:`pycdb._format.Layout`, ``TooLargeError``, ``OSError``,
``MemoryError``, ``ValueError`` for a finished or busy writer); no C
return code or pointer leaves it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from ._format import Layout

T = TypeVar("T")

#: Turns a line the compiler refused into the exception to raise:
#: ``(lineno, trimmed line, error code, byte position) -> Exception``.
SyntaxErrorFactory = Callable[[int, bytes, int, int], Exception]


class HandleAPI(Protocol):
    """Lookups over a mapped file whose header was checked.  Never
    changed after construction, so one handle serves any number of
    threads; it keeps the mapping alive."""

    def get(self, key: bytes, default: T) -> bytes | T:
        """The first value for ``key`` (bytes, or any other type the
        public API accepts, converted), or ``default``."""
        ...

    def contains(self, key: bytes) -> bool:
        """Whether ``key`` has a record."""
        ...

    def getitem(self, key: bytes) -> bytes:
        """The first value for ``key``; KeyError when it has none."""
        ...

    def get_all(self, key: bytes) -> list[bytes]:
        """Every value for ``key``, in the order they were added."""
        ...

    def survey(self) -> tuple[int, int]:
        """The number of records and the length of the longest key."""
        ...

    def rules_find(
        self, ip: bytes, host: bytes | None, info: bytes | None
    ) -> tuple[bytes, bytes] | None:
        """tcpserver's rules check (``pycdb._keyorder``): the key and data
        of the first record of the first key that exists, or None.  None
        of the three may hold a NUL (the caller checks).  Keys longer than
        the layout's ``max_klen`` are skipped unbuilt, so the work grows
        with the input, never with its square.  An ``ip`` holding ``:``
        (IPv6, which ucspi-tcp 0.88's tcpserver never gives) is refused
        with :class:`pycdb.errors.DialectError` before any lookup: found
        inside the walk, so the common case pays nothing for it."""
        ...


class MakerAPI(Protocol):
    """Streams records to a new file, cdbmake's layout byte for byte."""

    def add(self, key: bytes, value: bytes) -> None:
        """Append a record (bytes, or any buffer: it is measured against
        ``limit`` before it is read).  TooLargeError, nothing written,
        when the finished file would pass ``limit``."""
        ...

    def add_many(self, keys: list[bytes], values: list[bytes]) -> None:
        """``add`` for each pair in order, all or nothing on TooLargeError."""
        ...

    @property
    def count(self) -> int:
        """Records added so far."""
        ...

    def finish(self) -> None:
        """Write the hash tables and the header (once)."""
        ...

    def close(self) -> None:
        """Drop the bookkeeping; every later call raises ValueError."""
        ...


class RulesCompilerAPI(Protocol):
    """The tcprules compiler in the backend's own code (the C core's);
    feeds records to a maker."""

    def feed(self, chunk: bytes) -> None:
        """Compile the complete lines; keep a partial last one."""
        ...

    def end(self) -> int:
        """Compile a last line without a newline; the number of records."""
        ...

    def line(self) -> int:
        """The number of the line being compiled (after an error: its line)."""
        ...

    def skipped(self) -> tuple[int, list[int]]:
        """How many lines held text but no ``:`` (tcprules skips them
        without a word), and the numbers of the first few."""
        ...


class Backend(Protocol):
    """A backend module."""

    # Read-only members (properties): a module's classes satisfy them.
    @property
    def NAME(self) -> str:  # noqa: N802 - a module constant
        """``"cffi"`` or ``"pure"``."""
        ...

    @property
    def Handle(self) -> Callable[[Layout], HandleAPI]:  # noqa: N802 - a class
        """``Handle(layout)``: lookups over a checked file."""
        ...

    @property
    def Maker(self) -> Callable[[int, int], MakerAPI]:  # noqa: N802 - a class
        """``Maker(fd, limit)``: a writer to ``fd``, a new file at offset 0."""
        ...

    @property
    def RulesCompiler(  # noqa: N802 - a class
        self,
    ) -> Callable[[MakerAPI, SyntaxErrorFactory], RulesCompilerAPI] | None:
        """``RulesCompiler(maker, error)``, or None when the backend has no
        compiler of its own: pycdb.rules' reference compiler then feeds
        the maker."""
        ...

    def hash(self, key: bytes) -> int:
        """djb's cdb hash."""
        ...

    def hash_many(self, keys: list[bytes]) -> list[int]:
        """djb's hash of each key, in order."""
        ...
