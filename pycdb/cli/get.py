"""``pycdb get FILE KEY [SKIP]``: freecdb's ``cdbget KEY [SKIP] < FILE``,
byte for byte; ``pycdb get --all FILE KEY``: tinycdb's ``cdb -q -m FILE
KEY``, every value for KEY.

The data of the (SKIP+1)-th record for KEY, raw; exit 100 and no output
when there is none (docs/format.md §11).  The lookup is freecdb's, leniency
included (:class:`pycdb.cli.freecdb.Finder`), on FILE mapped as
``cdb_init()`` maps it, so FILE must be a regular file.

* SKIP is parsed like djb's ``scan_ulong``: digits only, an empty SKIP is
  0, and the value wraps modulo 2**64, so SKIP 18446744073709551615 makes
  ``++skip`` zero: no lookup at all, no output, exit 0.
* What reaches standard output before a fatal error: ``cdbget`` writes
  1024-byte pieces through an 8192-byte buffer that a fatal error never
  flushes (:class:`pycdb.cli._util.DjbOutput` with the same pieces).

``--all`` (cdbget can only name one record at a time) prints the data of
every record for KEY, in the order added, each followed by a newline, as
``cdb -q -m`` does; exit 100 and no output when there is none.  It reads
through :class:`pycdb.Reader`, so a damaged file is exit 111 with what
the Reader found, not freecdb's leniency.

The differences from freecdb common to the cdb tools are in
:mod:`pycdb.cli.cdbtools`.
"""

from __future__ import annotations

import os
import struct

from .._format import MASK
from ..errors import CorruptError
from ..reader import Reader
from ._util import DjbOutput, Fatal, usage
from .cdbtools import BLOCK, CHUNK, PROTO, USAGE, Stdout, finish, operands, output, unreadable
from .freecdb import CdbFile, Finder

#: djb's ``unsigned long`` (SKIP wraps at this width, as ``scan_ulong`` does).
_ULONG_MOD = 1 << (8 * struct.calcsize("L"))


def main(command: str, args: list[str]) -> int:
    """``pycdb get FILE KEY [SKIP]``: cdbget's stdout bytes and exit code;
    failures raise :class:`Fatal`."""
    if args[:1] == ["--all"]:
        every = operands("get", args[1:], 2, 2)
        if every is None:
            return 0
        return _get_all(every[0], os.fsencode(every[1]))
    given = operands("get", args, 2, 3)
    if given is None:
        return 0
    if not given[1]:
        raise usage(USAGE["get"])
    skip = 0
    if len(given) == 3:
        parsed = _parse_skip(given[2])
        if parsed is None:
            raise usage(USAGE["get"])
        skip = parsed
    out, raw = output()
    with CdbFile(given[0]) as cdb:
        return _get(cdb, os.fsencode(given[1]), skip, out, raw)


def _get_all(path: str, key: bytes) -> int:
    try:
        with Reader(path) as reader:
            values = reader.get_all(key)
    except OSError as exc:
        raise unreadable(path, exc) from None
    except CorruptError as exc:
        raise Fatal(111, f"unable to read {path}: {str(exc).removeprefix(path + ': ')}") from None
    if not values:
        return 100
    out, raw = output()
    for value in values:
        out.put(value)
        out.put(b"\n")
    finish(out, raw)
    return 0


def _parse_skip(text: str) -> int | None:
    """``scan_ulong``: the leading ASCII digits, modulo 2**64; None when
    anything follows them (a usage error)."""
    raw = os.fsencode(text)
    if not raw.isdigit() and raw:
        return None
    value = 0
    for i in range(0, len(raw), 18):
        piece = raw[i : i + 18]
        value = (value * 10 ** len(piece) + int(piece)) % _ULONG_MOD
    return value


def _get(cdb: CdbFile, key: bytes, skip: int, out: DjbOutput, raw: Stdout) -> int:
    finder = Finder(cdb, key)
    calls = (skip + 1) % _ULONG_MOD  # for (++skip; skip; --skip)
    if calls:
        r = finder.skip(calls)
        if r == 0:
            return 100
        if r < 0:
            raise Fatal(111, PROTO)
    dpos, dlen = finder.dpos, finder.dlen
    buf = cdb.buf
    size = cdb.size
    if dpos + dlen <= min(size, MASK + 1):
        end = dpos + dlen
        while dpos < end:
            out.put(buf[dpos : min(dpos + BLOCK, end)])
            dpos += BLOCK
    else:
        # Piece by piece, as cdbget does: the pieces before the one that
        # fails were put, and a fatal error never flushes what is buffered.
        while dlen:
            n = min(dlen, CHUNK)
            if dpos + n > size:
                raise Fatal(111, PROTO)
            out.put(buf[dpos : dpos + n])
            dpos = (dpos + n) & MASK
            dlen -= n
    finish(out, raw)
    return 0
