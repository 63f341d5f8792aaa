"""``pycdb stats FILE``: freecdb's ``cdbstats < FILE``, byte for byte.

The record count and, for every record, how many probes freecdb's lookup
for its key takes to reach it (``d0``...``d9``, ``>9``; docs/format.md
§11).  Like the C program, it reads the records from byte 2048 while the
32-bit position is below the first header word, dies with ``truncated
file`` on a short read, leaves out keys longer than its 1024-byte buffer,
and prints only at the end.  The probe counts are freecdb's on any file,
however crafted, without freecdb's quadratic time
(:class:`pycdb.cli.freecdb.Walks`).  FILE is mapped as ``cdb_init()``
maps it, so it must be a regular file.

The differences from freecdb common to the cdb tools are in
:mod:`pycdb.cli.cdbtools`.
"""

from __future__ import annotations

from .._format import HEADER_SIZE, MASK, PAIR
from ._util import DjbOutput, Fatal
from .cdbtools import CHUNK, TRUNCATED, Stdout, finish, operands, output
from .freecdb import CdbFile, Walks


def main(command: str, args: list[str]) -> int:
    """``pycdb stats FILE``: cdbstats' stdout bytes and exit code;
    failures raise :class:`Fatal`."""
    given = operands("stats", args, 1, 1)
    if given is None:
        return 0
    out, raw = output()
    with CdbFile(given[0]) as cdb:
        _stats(cdb, out, raw)
    return 0


def _stats(cdb: CdbFile, out: DjbOutput, raw: Stdout) -> None:
    buf = cdb.buf
    size = cdb.size
    if size < HEADER_SIZE:
        raise Fatal(111, TRUNCATED)
    walks = Walks(cdb)
    khash = walks.hash
    records = 0
    distance = [0] * 11
    eodata = PAIR.unpack_from(buf, 0)[0]
    off = HEADER_SIZE
    while (off & MASK) < eodata:
        if off + 8 > size:
            raise Fatal(111, TRUNCATED)
        klen, dlen = PAIR.unpack_from(buf, off)
        off += 8
        if off + klen > size:
            raise Fatal(111, TRUNCATED)
        if klen <= CHUNK:
            key = buf[off : off + klen]
            start = off - 8
            off += klen
            loop = walks.loop(key, start, off & MASK, khash(key))
            records += 1
            distance[loop - 1 if loop <= 10 else 10] += 1
        else:
            off += klen  # keys longer than cdbstats' buffer are not counted
        if off + dlen > size:
            raise Fatal(111, TRUNCATED)
        off += dlen
    lines = [b"records %10d\n" % records]
    lines += [b"d%d      %10d\n" % (j, distance[j]) for j in range(10)]
    lines.append(b">9      %10d\n" % distance[10])
    out.put(b"".join(lines))
    finish(out, raw)
