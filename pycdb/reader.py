"""``pycdb.Reader``: a memory-mapped cdb file, read-only and shared freely
between threads."""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Iterator
from typing import Any

from . import _backend
from ._common import Key, iter_records, parse_header

__all__ = ["Reader"]

_MISSING = object()


def map_file(path: str | os.PathLike[str] | bytes) -> tuple[Any, os.stat_result]:
    """The whole file at ``path`` mapped read-only (``b""`` when it is
    empty: an empty file cannot be mapped, and the header check says why),
    with the stat of the file that was mapped.  OSError, naming the file,
    when it cannot be opened or mapped (a directory, a device)."""
    name = os.fsdecode(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        try:
            buf: Any = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if st.st_size else b""
        except ValueError:  # emptied between fstat and mmap
            buf = b""
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, name) from None
    finally:
        os.close(fd)
    return buf, st


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

    get: Any
    get_all: Any

    def __init__(self, path: str | os.PathLike[str] | bytes) -> None:
        self.name = os.fsdecode(path)
        self._open(map_file(path)[0])

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
        self.backend = _backend.current().NAME
        handle = _backend.current().Handle(buf, header, eod, self.name)
        self._buf = buf
        self._eod = eod
        self._handle = handle
        self._len: int | None = None
        self.get = handle.get
        self.get_all = handle.get_all

    def close(self) -> None:
        """Release the mapping (once no lookup in another thread uses it)."""
        self.get = self.get_all = _closed
        self._handle = self._buf = None

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getitem__(self, key: Key) -> bytes:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __contains__(self, key: Key) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __len__(self) -> int:
        """The number of records (duplicates included), counted once."""
        if self._len is None:
            handle = self._handle
            if handle is None:
                _closed()
            self._len = handle.count()
        return self._len

    def _records(self) -> Iterator[tuple[bytes, bytes]]:
        buf = self._buf
        if buf is None:
            _closed()
        for kpos, klen, dpos, dlen in iter_records(buf, self._eod, self.name):
            yield buf[kpos : kpos + klen], buf[dpos : dpos + dlen]

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
