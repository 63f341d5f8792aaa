"""``pycdb dump FILE``: freecdb's ``cdbdump < FILE``, byte for byte.

Every record in file order in cdbmake's input format, then an empty line
(docs/format.md §11).  Like the C program, it reads FILE sequentially
(never maps it, so dumping a 1 GB cdb takes no 1 GB of memory; a pipe or
FIFO will do), walking the records from byte 2048 while the 32-bit
position is below the first header word, and dies with ``truncated
file`` on a short read, even inside the hash tables when the first word
says so.  ``cdbdump``'s input buffer (``buffer_0_read``) flushes the
output buffer before every ``read()``, so at ``truncated file``
everything printed so far, down to the last whole 1024-byte piece of a
key or value, has reached stdout.

The differences from freecdb common to the cdb tools are in
:mod:`pycdb.cli.cdbtools`.
"""

from __future__ import annotations

from typing import BinaryIO

from .._files import open_read
from .._format import HEADER_SIZE, MASK, PAIR
from ._util import DjbOutput, Fatal, oserror_text
from .cdbtools import BLOCK, CHUNK, TRUNCATED, Stdout, finish, operands, output, unreadable


def main(command: str, args: list[str]) -> int:
    """``pycdb dump FILE``: cdbdump's stdout bytes and exit code;
    failures raise :class:`Fatal`."""
    given = operands("dump", args, 1, 1)
    if given is None:
        return 0
    out, raw = output()
    path = given[0]
    try:
        fd, _ = open_read(path, streams=True)
    except OSError as exc:
        raise unreadable(path, exc) from None
    with open(fd, "rb", buffering=BLOCK) as f:
        _dump(f, out, raw)
    return 0


def _dump(f: BinaryIO, out: DjbOutput, raw: Stdout) -> None:
    pending: list[bytes] = []
    queued = 0

    def read(n: int) -> bytes:
        try:
            return f.read(n)
        except OSError as exc:
            flush()
            out.flush()
            raise Fatal(111, f"unable to read input: {oserror_text(exc)}") from None

    def flush() -> None:
        nonlocal queued
        if pending:
            out.put(b"".join(pending))
            pending.clear()
            queued = 0

    def emit(piece: bytes) -> None:
        nonlocal queued
        pending.append(piece)
        queued += len(piece)
        if queued >= BLOCK:
            flush()

    def truncated() -> Fatal:
        # buffer_0 flushes buffer_1 before its read() meets the end of the
        # file: everything printed so far reaches stdout.
        flush()
        out.flush()
        return Fatal(111, TRUNCATED)

    head = read(HEADER_SIZE)
    if len(head) < HEADER_SIZE:
        raise truncated()
    eodata = PAIR.unpack_from(head, 0)[0]
    off = HEADER_SIZE
    while (off & MASK) < eodata:
        lengths = read(8)
        if len(lengths) < 8:
            raise truncated()
        klen, dlen = PAIR.unpack(lengths)
        emit(b"+%d,%d:" % (klen, dlen))
        for length, tail in ((klen, b"->"), (dlen, b"\n")):
            left = length
            while left:
                piece = read(min(left, BLOCK))
                if len(piece) < min(left, BLOCK):
                    # copyb() prints whole 1024-byte pieces before the
                    # short one (every earlier piece here was whole).
                    emit(piece[: len(piece) // CHUNK * CHUNK])
                    raise truncated()
                emit(piece)
                left -= len(piece)
            emit(tail)
        off += 8 + klen + dlen
    emit(b"\n")
    flush()
    finish(out, raw)
