"""``pycdb.Reader``: a memory-mapped cdb file, read-only and shared freely
between threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, TypeVar, overload

from . import _backend
from ._args import Key
from ._files import map_file, snapshot
from ._format import LIMIT, Layout, parse_header, records

__all__ = ["Reader"]

T = TypeVar("T")
_MISSING: Any = object()


def _closed(*args: object, **kwargs: object) -> Any:
    raise ValueError("I/O operation on a closed cdb Reader")


class Reader:
    """A cdb file, memory-mapped.

    ``get`` returns the first value added for a key, ``get_all`` every
    value in the order they were added; iteration walks every record in
    file order, duplicates included.  Keys are bytes (``str`` is encoded
    as UTF-8).  A corrupt file raises :class:`pycdb.CorruptError`: at
    open for a bad header, during a lookup or walk for what it meets.

    Lookups keep no state in the object, so one Reader serves many
    threads.  ``close()`` drops the mapping; a lookup already running in
    another thread finishes on it, and the file is unmapped once the last
    one returns.
    """

    def __init__(self, path: str | os.PathLike[str] | bytes, *, copy: bool = False) -> None:
        """Open and map ``path`` (str, bytes or a path object), or with
        ``copy=True`` read it into a private copy.

        Raises OSError naming the file when it cannot be opened or is not
        a regular file (``FileNotFoundError``, ``IsADirectoryError``, and
        EINVAL for a FIFO or a device), and :class:`pycdb.CorruptError`
        for a header whose tables lie outside the file (with ``copy``,
        also for a file that changed while it was read).

        A mapping is shared with the file: replace a cdb by rename (as
        cdbmake, tcprules and :class:`pycdb.Writer` do) and the Reader
        keeps the old file whole.  A file rewritten *in place* (``cp
        new.cdb live.cdb`` truncates it and writes into the same inode) is
        outside the cdb contract: a lookup that touches a truncated page
        kills the process with SIGBUS.  Where writers cannot be trusted
        to rename, ``copy=True`` costs the file's size in memory and makes
        that impossible (:class:`pycdb.rules.RuleSet` copies rules
        databases this way)."""
        self.name = os.fsdecode(path)
        buf = snapshot(path, copy_limit=LIMIT)[0] if copy else map_file(path)[0]
        self._open(buf)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> Reader:
        """A Reader over cdb bytes already in memory (any bytes-like
        object; the Reader keeps its own copy)."""
        if data.__class__ is not bytes:
            # Not bytes(data): bytes(10**12) would allocate a terabyte.
            try:
                data = memoryview(data).tobytes()
            except TypeError:
                raise TypeError(
                    f"Reader.from_bytes needs a bytes-like object, not {type(data).__name__}"
                ) from None
        self = cls.__new__(cls)
        self.name = name
        self._open(data)
        return self

    def _open(self, buf: Any) -> None:
        header, eod = parse_header(buf, self.name)
        impl = _backend.current()
        handle = impl.Handle(Layout(buf, header, eod, self.name))
        self.backend: str = impl.NAME
        self._buf: Any = buf
        self._eod = eod
        self._handle: Any = handle
        self._survey_result: tuple[int, int] | None = None
        # The backend's own lookups, straight: no Python frame of ours
        # between a caller and the C call.  (The methods below are what
        # the class documents and what a closed Reader falls back to.)
        self.__dict__.update(
            get=handle.get,
            get_all=handle.get_all,
            _contains=handle.contains,
            _getitem=handle.getitem,
        )

    @overload
    def get(self, key: Key) -> bytes | None: ...

    @overload
    def get(self, key: Key, default: T) -> bytes | T: ...

    def get(self, key: Key, default: Any = None) -> Any:
        """The first value added for ``key`` (bytes; a ``str`` key is
        encoded as UTF-8), or ``default``.  Raises
        :class:`pycdb.CorruptError` when the walk meets damage, TypeError
        for a key that is not bytes-like or str, ValueError once closed."""
        return _closed()  # replaced per instance by the backend's lookup

    def get_all(self, key: Key) -> list[bytes]:
        """Every value added for ``key``, in the order they were added
        (``[]`` when there is none).  Raises as :meth:`get`."""
        return _closed()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release the mapping (once no lookup in another thread uses it)."""
        for name in ("get", "get_all", "_contains", "_getitem"):
            self.__dict__.pop(name, None)  # the class's raise ValueError
        self._handle = self._buf = None

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The backend's one-call lookups (set per instance in _open).
    _getitem: Any = _closed
    _contains: Any = _closed

    def __getitem__(self, key: Key) -> bytes:
        return self._getitem(key)  # type: ignore[no-any-return]

    def __contains__(self, key: Key) -> bool:
        return self._contains(key)  # type: ignore[no-any-return]

    def _survey(self) -> tuple[int, int]:
        if self._survey_result is None:
            handle = self._handle
            if handle is None:
                _closed()
            self._survey_result = handle.survey()
        return self._survey_result

    def __len__(self) -> int:
        """The number of records (duplicates included), counted once."""
        return self._survey()[0]

    @property
    def longest_klen(self) -> int:
        """The length in bytes of the longest key (0 for an empty
        database), found by the same one walk over the records as
        ``len()``; no lookup of a longer key can find a record.  Raises
        :class:`pycdb.CorruptError` for a damaged record, ValueError
        once closed."""
        return self._survey()[1]

    def _records(self) -> Iterator[tuple[bytes, bytes]]:
        buf = self._buf
        if buf is None:
            _closed()
        for pos, klen, dlen in records(buf, self._eod, self.name):
            k = pos + 8
            yield buf[k : k + klen], buf[k + klen : k + klen + dlen]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) in file order, duplicates included."""
        return self._records()

    def keys(self) -> Iterator[bytes]:
        """Every record's key in file order (a duplicated key repeats)."""
        return (k for k, _ in self._records())

    def values(self) -> Iterator[bytes]:
        """Every record's value in file order."""
        return (v for _, v in self._records())

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.backend
        return f"<pycdb.Reader {self.name!r} ({state})>"
