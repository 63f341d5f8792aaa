"""Reading rules text as a stream: bytes in chunks of any size, cut into
blocks of whole lines, so nothing grows with the number of lines.  (What
a line means is :mod:`pycdb.rules.language`'s business.)"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

#: Bytes read from a file at a time.
CHUNK = 1 << 16


def blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A byte stream given in chunks, cut into blocks of whole lines: each
    block is ``count(b"\\n") + 1`` lines joined by ``\\n``, without the
    newline after the last (a last line without one included).  Only a
    partial line is carried between chunks, and a comment line is never
    held at all: a long one costs no memory.  (A comment cut by a chunk's
    end is given as ``b"#"``: it is skipped whatever follows.)"""
    carry: list[bytes] = []
    skipping = False  # inside a comment line that began in an earlier chunk
    for chunk in chunks:
        if not chunk:
            continue
        start = 0
        if carry or skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                if not skipping:
                    carry.append(chunk)
                continue
            if skipping:
                yield b"#"
                skipping = False
            else:
                carry.append(chunk[:nl])
                yield b"".join(carry)
                carry = []
            start = nl + 1
        last = chunk.rfind(b"\n")
        if last >= start:
            yield chunk[start:last]
            start = last + 1
        if start < len(chunk):
            if chunk[start] == 35:
                skipping = True
            else:
                carry.append(chunk[start:])
    if skipping:
        yield b"#"
    elif carry:
        yield b"".join(carry)


def lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream given in chunks, each without its
    newline (see :func:`blocks`)."""
    for block in blocks(chunks):
        yield from block.split(b"\n")


def gather(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The same stream in chunks of at least ``size`` bytes (but the last)."""
    parts: list[bytes] = []
    have = 0
    for chunk in chunks:
        parts.append(chunk)
        have += len(chunk)
        if have >= size:
            yield b"".join(parts)
            parts = []
            have = 0
    if parts:
        yield b"".join(parts)


class FileChunks:
    """The chunks of a file opened now (so a missing file fails before
    anything is created) and closed when read to the end or dropped."""

    def __init__(self, f: IO[bytes], close: bool) -> None:
        self._f = f
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        try:
            read = self._f.read
            while True:
                chunk = read(CHUNK)
                if not chunk:
                    return
                if not isinstance(chunk, bytes):
                    raise TypeError("rules files are read as bytes: open them in binary mode")
                yield chunk
        finally:
            if self._close:
                self._f.close()
