"""Drop-ins for freecdb's ``cdbmake``, ``cdbdump``, ``cdbget`` and ``cdbstats``.

``pycdb cdbmake OUT TMP < input``, ``pycdb dump FILE``, ``pycdb get FILE KEY
[SKIP]`` and ``pycdb stats FILE`` print the same bytes to standard output and
exit with the same codes as the Debian freecdb programs, for valid and for
malformed files alike; their messages are freecdb's with ``pycdb: fatal:``
in front.  The freecdb programs are the specification, so this module
follows what they *do*, not what a cdb reader should do:

* ``get`` and ``stats`` look keys up with an emulation of freecdb's
  ``cdb_findnext()`` (:class:`Finder`), not with :class:`pycdb.Reader`.  It
  checks nothing but that each read lies inside the file: the header is not
  validated, a record may sit anywhere (even inside the header), 32-bit
  positions wrap, and a table without an empty slot is simply a miss after
  ``hslots`` probes.  A stricter reader would print different bytes.
* ``dump`` and ``stats`` walk the records sequentially from byte 2048 while
  the (32-bit) position is below the first header word, as the C programs
  read their standard input, and die with ``truncated file`` on a short
  read, even inside the hash tables when the first word says so.
* What reaches standard output before a fatal error follows djb's buffer
  library: ``cdbget`` writes 1024-byte pieces through an 8192-byte buffer
  that a fatal error never flushes (:class:`pycdb.cli._util.DjbOutput`
  with the same pieces); ``cdbdump``'s input buffer (``buffer_0_read``)
  flushes the output buffer before every ``read()``, so at ``truncated
  file`` everything printed so far, down to the last whole 1024-byte piece
  of a key or value, has reached stdout; ``cdbstats`` prints only at the
  end.
* ``stats`` gives freecdb's numbers without probing slot by slot where
  freecdb would take quadratic time (duplicate keys, thousands of keys
  with one hash): walks are resumed per key and a crowded table gets an
  index (:class:`_TableIndex`).  A crafted table whose slot count wraps
  the 32-bit end is walked by :class:`Finder`, which computes the
  periodic part instead of probing up to 2**32 slots.
* ``cdbget``'s SKIP is parsed like djb's ``scan_ulong``: digits only, an
  empty SKIP is 0, and the value wraps modulo 2**64, so SKIP
  18446744073709551615 makes ``++skip`` zero: no lookup at all, no output,
  exit 0.
* ``cdbmake`` reports exactly cdbmake.c's errors and entry numbers
  (including its "unexpected end if input") and the same 32-bit overflow
  points; records are streamed to :class:`pycdb.Writer` as they are parsed,
  so the output file is byte-identical to cdbmake's and created with mode
  0644 minus the umask, as ``open_trunc`` does.

Deliberate differences from freecdb:

* Each command takes the cdb as a FILE argument instead of standard input;
  a FILE that cannot be opened is ``unable to open FILE: ...`` (exit 111).
* On any error ``pycdb cdbmake`` removes TMP (freecdb leaves a partial TMP
  behind).  OUT is never touched on an error, by either.
* A directory as FILE gives ``unable to read input: is a directory`` (111)
  for every command; Debian's cdbget crashes with SIGSEGV there.
* Standard output closed under us (``pycdb dump big.cdb | head``) is exit
  111 with ``unable to write output: broken pipe``; the C programs are
  killed by SIGPIPE.
* ``pycdb cdbmake`` holds one record (key and data) in memory at a time,
  where cdbmake streams even a single record byte by byte.
* ``-h``/``--help`` as the only argument prints the command's usage to
  stdout (exit 0); a file called ``--help`` can be given as ``./--help``.

System error texts are djb's ``error_str()`` wording (``_util.oserror_text``) ("file does not
exist", "out of disk space", ...), so messages match freecdb's.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import mmap
import os
import re
import stat
import struct
import sys
from typing import IO, BinaryIO, Callable, Union

from .. import _backend
from .._format import LIMIT
from ..errors import TooLargeError
from ..writer import Writer
from ._util import DjbOutput, Fatal, oserror_text, usage

_MASK = 0xFFFFFFFF
_PAIR = struct.Struct("<II")
_WORD = struct.Struct("<I")
#: djb's ``unsigned long`` (SKIP wraps at this width, as ``scan_ulong`` does).
_ULONG_MOD = 1 << (8 * struct.calcsize("L"))
_CHUNK = 1024  # BUFSIZE of cdbdump/cdbget/cdbstats
_BLOCK = 1 << 16  # how much output pycdb gathers before handing it on
#: The largest file position cdbmake accepts (its ``posplus`` fails past
#: 32 bits); a module constant so the tests can exercise the overflow paths
#: without writing 4 GiB.
_LIMIT = LIMIT

_USAGE = {
    "cdbmake": "pycdb cdbmake OUT TMP",
    "dump": "pycdb dump FILE",
    "get": "pycdb get FILE KEY [SKIP]",
    "stats": "pycdb stats FILE",
}

_HELP = {
    "cdbmake": "read +klen,dlen:key->data lines ended by an empty line from standard input\n"
    "and publish them as the cdb OUT, by way of TMP (freecdb's cdbmake OUT TMP)",
    "dump": "print every record of the cdb FILE in cdbmake's format (cdbdump < FILE)",
    "get": "print the data of the SKIP+1-th record for KEY; exit 100 when there is none\n"
    "(cdbget KEY [SKIP] < FILE)",
    "stats": "print the record count and the probe-distance histogram (cdbstats < FILE)",
}

Buffer = Union[bytes, mmap.mmap]


# ---------------------------------------------------------------------------
# standard output


def _silence_stdout() -> None:
    """After a write error on stdout, point fd 1 at /dev/null so that the
    interpreter's own flush at exit cannot fail a second time."""
    try:
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


class _Stdout:
    """The file descriptor under djb's ``buffer_1``: every piece DjbOutput
    hands over is written through at once, and a failure is the C
    program's message, with djb's error text."""

    def __init__(self) -> None:
        out = sys.stdout
        if out is None:  # fd 1 was closed when the interpreter started
            raise Fatal(111, "unable to write output: file descriptor not open")
        self._out: BinaryIO = out.buffer
        self.verb = "write"

    def _fail(self, exc: OSError) -> Fatal:
        _silence_stdout()
        return Fatal(111, f"unable to {self.verb} output: {oserror_text(exc)}")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            self._out.write(data)
            self._out.flush()
        except OSError as exc:
            raise self._fail(exc) from None
        return len(data)

    def flush(self) -> None:
        try:
            self._out.flush()
        except OSError as exc:
            raise self._fail(exc) from None


def _output() -> tuple[DjbOutput, _Stdout]:
    raw = _Stdout()
    return DjbOutput(raw), raw  # type: ignore[arg-type]


def _finish(out: DjbOutput, raw: _Stdout) -> None:
    """The final ``buffer_flush(buffer_1)``."""
    raw.verb = "flush"
    out.flush()


# ---------------------------------------------------------------------------
# the cdb file, as freecdb sees it


def _open_input(path: str) -> int:
    """A read-only descriptor for FILE, which the C programs would have
    had as standard input."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Fatal(111, f"unable to open {path}: {oserror_text(exc)}") from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            # read(2) on a directory: what cdbdump and cdbstats say.
            raise Fatal(111, "unable to read input: is a directory")
    except BaseException:
        os.close(fd)
        raise
    return fd


class _CdbFile:
    """The whole file mapped read-only: the bytes cdbstats reads from
    standard input and the mapping ``cdb_init()`` makes for lookups.

    freecdb's ``cdb_read()`` only checks that a read lies inside the file,
    so ``size`` is the one bound every emulated read is checked against."""

    def __init__(self, path: str) -> None:
        fd = _open_input(path)
        self._map: mmap.mmap | None = None
        try:
            st = os.fstat(fd)
            buf: Buffer = b""
            if st.st_size > 0:
                try:
                    self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                    buf = self._map
                except (OSError, ValueError):
                    buf = self._read_all(fd)  # pipes, character devices
            elif not stat.S_ISREG(st.st_mode):
                buf = self._read_all(fd)
            self.buf = buf
            self.size = len(buf)
        finally:
            os.close(fd)

    @staticmethod
    def _read_all(fd: int) -> bytes:
        parts: list[bytes] = []
        try:
            while True:
                data = os.read(fd, 1 << 20)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        except OSError as exc:
            raise Fatal(111, f"unable to read input: {oserror_text(exc)}") from None

    def close(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view escaped: GC unmaps
                self._map.close()
            self._map = None

    def __enter__(self) -> _CdbFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PROTO = "unable to read input: protocol error"
_TRUNCATED = "unable to read input: truncated file"


class Finder:
    """freecdb's ``struct cdb`` and ``cdb_findnext()`` for one key.

    Every read is checked only against the file size and every position is
    32-bit arithmetic, exactly as in cdb.c, so the answers (found, not
    found, or a read error) and ``loop`` (the slots probed) are freecdb's on
    any file, however crafted.

    The walk through a table is ``hpos + 8*i`` until it steps onto
    ``hpos + 8*hslots`` (mod 2**32), where it restarts at ``hpos``.  When it
    restarts a second time it has seen one whole cycle, and every later
    probe repeats that cycle: from then on the matches are computed instead
    of probed, so a table that claims 2**32 slots but whose end wraps to a
    few slots costs a few probes, not four billion.
    """

    __slots__ = (
        "_buf",
        "_size",
        "_key",
        "_klen",
        "_khash",
        "loop",
        "hslots",
        "_hpos",
        "_kpos",
        "_end",
        "dpos",
        "dlen",
        "_restarts",
        "_base",
        "_period",
        "_cycle",
        "_next",
        "periodic",
    )

    def __init__(self, cdb: _CdbFile, key: bytes, khash: int | None = None) -> None:
        self._buf = cdb.buf
        self._size = cdb.size
        self._key = key
        self._klen = len(key)
        self._khash = _backend.current().hash(key) if khash is None else khash
        self.loop = 0  # cdb_findstart()
        self.hslots = 0
        self._hpos = self._kpos = self._end = 0
        # cdbget prints dpos/dlen even when it never looked (SKIP wrapped):
        # its static struct cdb starts zeroed.
        self.dpos = 0
        self.dlen = 0
        self.periodic = False
        self._restarts = 0
        self._base = 0
        self._period = 0
        self._cycle: list[tuple[int, int, int]] = []
        self._next = 0

    def _record(self, pos: int) -> int:
        """The record check after a slot's hash matched: -1 read error,
        0 another key, 1 this key (dpos/dlen set)."""
        buf = self._buf
        size = self._size
        if pos + 8 > size:
            return -1
        klen, dlen = _PAIR.unpack_from(buf, pos)
        n = self._klen
        if klen != n:
            return 0
        start = (pos + 8) & _MASK
        key = self._key
        if start + n <= min(size, _MASK + 1):
            if buf[start : start + n] != key:
                return 0
        else:
            # match(): 32-byte pieces, each read checked on its own, so a
            # difference before the end of the file is a miss, not an error.
            off = 0
            while off < n:
                m = min(32, n - off)
                p = (start + off) & _MASK
                if p + m > size:
                    return -1
                if buf[p : p + m] != key[off : off + m]:
                    return 0
                off += m
        self.dlen = dlen
        self.dpos = (pos + 8 + n) & _MASK
        return 1

    def _repeat(self) -> int:
        """findnext() once the walk is known to be periodic."""
        cycle = self._cycle
        if cycle:
            turn, j = divmod(self._next, len(cycle))
            offset, dpos, dlen = cycle[j]
            loop = self._base + turn * self._period + offset
            if loop <= self.hslots:
                self._next += 1
                self.loop = loop
                self.dpos = dpos
                self.dlen = dlen
                return 1
        self.loop = self.hslots
        return 0

    def findnext(self) -> int:
        """One ``cdb_findnext()``: 1 found (``dpos``/``dlen`` set), 0 not
        found, -1 a read outside the file (errno "protocol error")."""
        if self.periodic:
            return self._repeat()
        buf = self._buf
        size = self._size
        if not self.loop:
            u = self._khash
            off = (u << 3) & 2047
            if off + 8 > size:
                return -1
            hpos, hslots = _PAIR.unpack_from(buf, off)
            self.hslots = hslots
            if not hslots:
                return 0
            self._hpos = hpos
            self._kpos = (hpos + ((((u >> 8) % hslots) << 3) & _MASK)) & _MASK
            self._end = (hpos + ((hslots << 3) & _MASK)) & _MASK
            self._restarts = 0
            self._cycle = []
        hslots = self.hslots
        hpos = self._hpos
        end = self._end
        khash = self._khash
        while self.loop < hslots:
            kpos = self._kpos
            if kpos + 8 > size:
                return -1
            h, pos = _PAIR.unpack_from(buf, kpos)
            if not pos:
                return 0
            loop = self.loop = self.loop + 1
            kpos = (kpos + 8) & _MASK
            restart = kpos == end
            self._kpos = hpos if restart else kpos
            found = self._record(pos) if h == khash else 0
            if found < 0:
                return -1
            if restart or self._restarts:
                if found and self._restarts == 1:
                    self._cycle.append((loop - self._base, self.dpos, self.dlen))
                if restart:
                    self._restarts += 1
                    if self._restarts == 2:
                        self._period = loop - self._base
                        self.periodic = True
                    self._base = loop
            if found:
                return 1
            if self.periodic:
                return self._repeat()
        return 0

    def skip(self, calls: int) -> int:
        """The result of the last of ``calls`` findnext() calls (or the
        first that did not find), without probing a periodic walk
        ``calls`` times."""
        while calls > 0:
            if self.periodic:
                self._next += calls - 1
                return self._repeat()
            r = self.findnext()
            if r != 1:
                return r
            calls -= 1
        return 1


# ---------------------------------------------------------------------------
# cdbdump


def _dump(path: str, out: DjbOutput, raw: _Stdout) -> None:
    """cdbdump: a sequential read, like the C program's (the file is not
    mapped, so dumping a 1 GB cdb takes no 1 GB of memory)."""
    with open(_open_input(path), "rb", buffering=_BLOCK) as f:
        _dump_stream(f, out, raw)


def _dump_stream(f: BinaryIO, out: DjbOutput, raw: _Stdout) -> None:
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
        if queued >= _BLOCK:
            flush()

    def truncated() -> Fatal:
        # buffer_0 flushes buffer_1 before its read() meets the end of the
        # file: everything printed so far reaches stdout.
        flush()
        out.flush()
        return Fatal(111, _TRUNCATED)

    head = read(2048)
    if len(head) < 2048:
        raise truncated()
    eodata = _WORD.unpack_from(head, 0)[0]
    off = 2048
    while (off & _MASK) < eodata:
        words = read(8)
        if len(words) < 8:
            raise truncated()
        klen, dlen = _PAIR.unpack(words)
        emit(b"+%d,%d:" % (klen, dlen))
        for length, tail in ((klen, b"->"), (dlen, b"\n")):
            left = length
            while left:
                piece = read(min(left, _BLOCK))
                if len(piece) < min(left, _BLOCK):
                    # copyb() prints whole 1024-byte pieces before the
                    # short one (every earlier piece here was whole).
                    emit(piece[: len(piece) // _CHUNK * _CHUNK])
                    raise truncated()
                emit(piece)
                left -= len(piece)
            emit(tail)
        off += 8 + klen + dlen
    emit(b"\n")
    flush()
    _finish(out, raw)


# ---------------------------------------------------------------------------
# cdbget


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


def _get(cdb: _CdbFile, key: bytes, skip: int, out: DjbOutput, raw: _Stdout) -> int:
    finder = Finder(cdb, key)
    calls = (skip + 1) % _ULONG_MOD  # for (++skip; skip; --skip)
    if calls:
        r = finder.skip(calls)
        if r == 0:
            return 100
        if r < 0:
            raise Fatal(111, _PROTO)
    dpos, dlen = finder.dpos, finder.dlen
    buf = cdb.buf
    size = cdb.size
    if dpos + dlen <= min(size, _MASK + 1):
        end = dpos + dlen
        while dpos < end:
            out.put(buf[dpos : min(dpos + _BLOCK, end)])
            dpos += _BLOCK
    else:
        # Piece by piece, as cdbget does: the pieces before the one that
        # fails were put, and a fatal error never flushes what is buffered.
        while dlen:
            n = min(dlen, _CHUNK)
            if dpos + n > size:
                raise Fatal(111, _PROTO)
            out.put(buf[dpos : dpos + n])
            dpos = (dpos + n) & _MASK
            dlen -= n
    _finish(out, raw)
    return 0


# ---------------------------------------------------------------------------
# cdbstats


#: Probes spent in one hash table (beyond four per slot) after which
#: cdbstats' lookups there switch to a :class:`_TableIndex`; a module
#: constant so the tests can force the index on.
_INDEX_AFTER = 4096


class _TableIndex:
    """One hash table's slots, sorted for the question cdbstats asks of
    every record: after how many probes does ``cdb_findnext()`` reach the
    record's own slot, or what stops it first?

    Used when the walk through the table is plain: either the whole table
    lies in the file (the walk is cyclic, ``hslots`` probes at most), or it
    runs past the end of the file without its 32-bit end wrapping (the walk
    is linear and a read past the end stops it).  Walking slot by slot
    costs a probe per slot per record, so many records in one crowded
    table (thousands of distinct keys with one hash, which cdbmake
    happily writes) would take quadratic time; here each record costs a
    few bisections.

    Along the walk, only these slots can stop it or count: an empty slot
    (a miss), a slot of the key's hash that points at the record itself
    (found), and a slot of the key's hash whose record read fails: its
    header is past the end of the file, or its key runs past the end while
    every whole 32-byte piece before the end equals the key's (match()
    reads piece by piece).  Any other slot is a probe that changes
    nothing."""

    def __init__(self, buf: Buffer, size: int, hpos: int, hslots: int) -> None:
        self.hslots = hslots
        self.cyclic = hpos + 8 * hslots <= size
        n = hslots if self.cyclic else max(0, (size - hpos) // 8)
        self.n = n
        self.empties: list[int] = []
        self.at: dict[tuple[int, int], list[int]] = {}
        self.fails: dict[tuple[int, tuple[int, bytes] | None], list[int]] = {}
        for j, (h, pos) in enumerate(_PAIR.iter_unpack(buf[hpos : hpos + 8 * n])):
            if not pos:
                self.empties.append(j)
                continue
            self.at.setdefault((h, pos), []).append(j)
            tag: tuple[int, bytes] | None
            if pos + 8 > size:
                tag = None  # the record header cannot be read
            else:
                klen = _WORD.unpack_from(buf, pos)[0]
                if klen > _CHUNK or pos + 8 + klen <= size:
                    continue
                whole = (size - pos - 8) // 32 * 32  # the pieces match() can read
                tag = (klen, bytes(buf[pos + 8 : pos + 8 + whole]))
            self.fails.setdefault((h, tag), []).append(j)

    def _distance(self, slots: list[int], s0: int) -> int | None:
        """Probes from slot s0 to the first of ``slots`` the walk meets."""
        i = bisect.bisect_left(slots, s0)
        if i < len(slots):
            return slots[i] - s0
        if self.cyclic and slots:
            return slots[0] + self.hslots - s0
        return None

    def loop(self, u: int, start: int, key: bytes) -> int:
        s0 = (u >> 8) % self.hslots
        if not self.cyclic and s0 >= self.n:
            raise Fatal(111, _PROTO)  # the first slot read is past the end
        limit = self._distance(self.empties, s0)
        miss = True  # an empty slot: cdb_findnext() returns 0
        if limit is None:
            limit, miss = (self.hslots, True) if self.cyclic else (self.n - s0, False)
        found = None
        for j in self.at.get((u, start), ()):
            d = j - s0 if j >= s0 else (j + self.hslots - s0 if self.cyclic else None)
            if d is not None and d < limit and (found is None or d < found):
                found = d
        stop = limit if found is None else found
        tags: list[tuple[int, bytes] | None] = [None]
        tags += [(len(key), key[:piece]) for piece in range(0, len(key), 32)]
        for tag in tags:
            slots = self.fails.get((u, tag))
            if slots:
                d = self._distance(slots, s0)
                if d is not None and d < stop:
                    raise Fatal(111, _PROTO)
        if found is not None:
            return found + 1
        raise Fatal(111, _TRUNCATED if miss else _PROTO)


class _Walks:
    """The lookups cdbstats makes, one per record: ``cdb_findnext()`` for
    the record's key until the data position is the record's own.

    Three ways to the same answer, cheapest first: a direct walk that
    stops at the first complication (:func:`_quick_loop`); a table index
    once a table has cost many probes (:class:`_TableIndex`); and the full
    :class:`Finder` emulation, whose walks are kept and resumed when they
    got long, because the walk for a key is the same every time: N copies
    of one key then cost one walk, not N*(N+1)/2 probes."""

    KEEP = 8  # walks shorter than this are cheaper to redo than to keep

    def __init__(self, cdb: _CdbFile) -> None:
        self._cdb = cdb
        self.hash: Callable[[bytes], int] = _backend.current().hash
        self._kept: dict[bytes, tuple[Finder, dict[int, int]]] = {}
        self._spent = [0] * 256
        self._index: dict[int, _TableIndex | None] = {}

    def indexed(self, t: int) -> _TableIndex | None:
        return self._index.get(t)

    def loop(self, key: bytes, start: int, pos: int, u: int, spent: int) -> int:
        """``c.loop`` when the walk for ``key`` finds the record at
        ``start`` (its data at ``pos``), after :func:`_quick_loop` gave up
        having spent ``spent`` probes; Fatal as cdbstats dies otherwise."""
        t = u & 255
        index = self._index.get(t)
        if index is not None:
            return index.loop(u, start, key)
        spent = self._spent[t] = self._spent[t] + spent
        if spent > _INDEX_AFTER and t not in self._index:
            buf = self._cdb.buf
            size = self._cdb.size
            hpos, hslots = _PAIR.unpack_from(buf, 8 * t)
            in_file = min(hslots, max(0, size - hpos) // 8)
            if hslots and hpos + 8 * hslots <= _MASK + 1 and spent > _INDEX_AFTER + 4 * in_file:
                index = self._index[t] = _TableIndex(buf, size, hpos, hslots)
                return index.loop(u, start, key)
        return self._walk(key, pos, u)

    def _walk(self, key: bytes, pos: int, u: int) -> int:
        kept = self._kept.get(key)
        if kept is None:
            finder = Finder(self._cdb, key, u)
            seen: dict[int, int] = {}
        else:
            finder, seen = kept
            loop = seen.get(pos)
            if loop is not None:
                return loop
        before = finder.loop
        while True:
            if finder.periodic:
                # Only the cycle's matches are left, and each was seen
                # already: cdbstats would probe on until hslots and miss.
                raise Fatal(111, _TRUNCATED)
            r = finder.findnext()
            if r < 0:
                raise Fatal(111, _PROTO)
            if r == 0:
                raise Fatal(111, _TRUNCATED)
            dpos = finder.dpos
            if dpos == pos:
                break
            if dpos not in seen:
                seen[dpos] = finder.loop
        loop = seen[pos] = finder.loop
        self._spent[u & 255] += loop - before
        if kept is None and loop >= self.KEEP:
            self._kept[key] = (finder, seen)
        return loop


def _quick_loop(buf: Buffer, hpos: int, hslots: int, u: int, start: int) -> int:
    """``c.loop`` for the record at ``start`` in the common case, or minus
    the probes spent before giving up ("ask :class:`_Walks`"): the walk
    meets the record's own slot with no other slot of the same hash (and
    no empty slot) before it, in a table that lies inside the file (the
    caller checks).  The walk is then cdb_findnext()'s exactly: no record
    is read before the match, and the match is the record the key was
    just read from."""
    end = hpos + 8 * hslots
    kpos = hpos + 8 * ((u >> 8) % hslots)
    loop = 0
    unpack = _PAIR.unpack_from
    while loop < hslots:
        h, pos = unpack(buf, kpos)
        if not pos:
            return -loop
        loop += 1
        if h == u:
            return loop if pos == start else -loop
        kpos += 8
        if kpos == end:
            kpos = hpos
    return -loop


def _stats(cdb: _CdbFile, out: DjbOutput, raw: _Stdout) -> None:
    buf = cdb.buf
    size = cdb.size
    if size < 2048:
        raise Fatal(111, _TRUNCATED)
    walks = _Walks(cdb)
    khash = walks.hash
    records = 0
    distance = [0] * 11
    heads = [_PAIR.unpack_from(buf, 8 * t) for t in range(256)]
    eodata = heads[0][0]
    off = 2048
    while (off & _MASK) < eodata:
        if off + 8 > size:
            raise Fatal(111, _TRUNCATED)
        klen, dlen = _PAIR.unpack_from(buf, off)
        off += 8
        if off + klen > size:
            raise Fatal(111, _TRUNCATED)
        if klen <= _CHUNK:
            key = buf[off : off + klen]
            start = off - 8
            off += klen
            u = khash(key)
            hpos, hslots = heads[u & 255]
            loop = 0
            if hslots and hpos + 8 * hslots <= size and walks.indexed(u & 255) is None:
                loop = _quick_loop(buf, hpos, hslots, u, start)
            if loop <= 0:
                loop = walks.loop(key, start, off & _MASK, u, -loop)
            records += 1
            distance[loop - 1 if loop <= 10 else 10] += 1
        else:
            off += klen  # keys longer than cdbstats' buffer are not counted
        if off + dlen > size:
            raise Fatal(111, _TRUNCATED)
        off += dlen
    lines = [b"records %10d\n" % records]
    lines += [b"d%d      %10d\n" % (j, distance[j]) for j in range(10)]
    lines.append(b">9      %10d\n" % distance[10])
    out.put(b"".join(lines))
    _finish(out, raw)


# ---------------------------------------------------------------------------
# cdbmake

_HEAD = re.compile(rb"\+([0-9]{0,9}),([0-9]{0,9}):")
_READ_SIZE = 1 << 16


class _ReadError(Exception):
    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _Input:
    """Standard input in blocks, with cdbmake's getch() on top."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._read: Callable[[int], bytes] = getattr(stream, "read1", None) or stream.read
        self.buf = b""
        self.i = 0
        self._eof = False

    def more(self) -> bool:
        """Refill an exhausted block; False at the end of the input."""
        if self._eof:
            return False
        try:
            data = self._read(_READ_SIZE)
        except OSError as exc:
            raise _ReadError(exc) from None
        if not data:
            self._eof = True
            return False
        self.buf = data
        self.i = 0
        return True

    def getc(self) -> int:
        """The next byte, or -1 at the end of the input."""
        if self.i >= len(self.buf) and not self.more():
            return -1
        c = self.buf[self.i]
        self.i += 1
        return c

    def take(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes, or None when the input ends first.  Never
        allocates more than was actually read: a claimed length of 4 GiB
        on a short input costs the short input."""
        buf, i = self.buf, self.i
        if len(buf) - i >= n:
            self.i = i + n
            return buf[i : i + n]
        parts = [buf[i:]]
        n -= len(buf) - i
        self.i = len(buf)
        while n:
            if not self.more():
                return None
            piece = self.buf[:n]
            self.i = len(piece)
            n -= len(piece)
            parts.append(piece)
        return b"".join(parts)


def _cdbmake(out_path: str, tmp_path: str, stream: IO[bytes] | None) -> None:
    def die_write(text: str) -> Fatal:
        return Fatal(111, f"unable to create {tmp_path}: {text}")

    try:
        writer = Writer(out_path, tmp_path=tmp_path)
    except OSError as exc:
        raise die_write(oserror_text(exc)) from None
    try:
        _cdbmake_records(writer, stream, die_write)
        try:
            writer.commit()
        except TooLargeError:
            raise die_write("out of memory") from None
        except OSError as exc:
            if exc.filename2 is not None:  # os.rename names both files
                raise Fatal(
                    111, f"unable to rename {tmp_path} to {out_path}: {oserror_text(exc)}"
                ) from None
            raise die_write(oserror_text(exc)) from None
        except MemoryError:
            raise die_write("out of memory") from None
    except BaseException:
        writer.abort()
        raise


def _cdbmake_records(
    writer: Writer, stream: IO[bytes] | None, die_write: Callable[[str], Fatal]
) -> None:
    """Parse cdbmake.c's input format with its exact errors, adding each
    record as soon as it is complete."""
    if stream is None:
        raise Fatal(111, "unable to read input: entry 1: file descriptor not open")
    src = _Input(stream)
    entry = 0
    pos = 2048  # cdb_make's c->pos, to fail where its posplus() fails
    count = 0
    too_large = False  # the writer refused: cdb_make_finish() will fail

    def die_read(text: str) -> Fatal:
        return Fatal(111, f"unable to read input: entry {entry}: {text}")

    def getch() -> int:
        c = src.getc()
        if c < 0:
            raise die_read("unexpected end if input")
        return c

    def number(stop: int, what: str) -> int:
        value = 0
        while True:
            c = getch()
            if c == stop:
                return value
            if not 0x30 <= c <= 0x39:
                raise die_read(f"bad {what} format")
            if value > 429496720:
                raise die_write("out of memory")
            value = value * 10 + (c - 0x30)

    def add(key: bytes, data: bytes) -> None:
        # cdb_make_addend(): the position must stay within 32 bits.
        nonlocal pos, count, too_large
        pos += 8 + len(key) + len(data)
        if pos > _LIMIT:
            raise die_write("out of memory")
        count += 1
        if too_large:
            return
        try:
            writer.add(key, data)
        except TooLargeError:
            # The writer counts the hash tables too; cdbmake notices that
            # only when it writes them, after reading the rest of the input
            # (and after any error in it), so keep parsing.
            too_large = True
        except MemoryError:
            raise die_write("out of memory") from None
        except OSError as exc:
            raise die_write(oserror_text(exc)) from None

    head = _HEAD
    try:
        while True:
            entry += 1
            buf, i = src.buf, src.i
            if i < len(buf):
                # Fast path: a whole record inside the current block.
                if buf[i] == 0x0A:
                    src.i = i + 1
                    break
                m = head.match(buf, i)
                if m is not None:
                    k = m.end()
                    kend = k + (int(m[1]) if m[1] else 0)
                    dend = kend + 2 + (int(m[2]) if m[2] else 0)
                    if dend < len(buf) and buf[dend] == 0x0A and buf[kend : kend + 2] == b"->":
                        src.i = dend + 1
                        add(buf[k:kend], buf[kend + 2 : dend])
                        continue
            # Slow path: byte by byte, with every error of cdbmake.c.
            c = getch()
            if c == 0x0A:
                break
            if c != 0x2B:
                raise die_read("entry must start with +")
            keylen = number(0x2C, "keylen")
            datalen = number(0x3A, "datalen")
            key = src.take(keylen)
            if key is None:
                raise die_read("unexpected end if input")
            if getch() != 0x2D or getch() != 0x3E:
                raise die_read("key must be followed by ->")
            data = src.take(datalen)
            if data is None:
                raise die_read("unexpected end if input")
            add(key, data)
            if getch() != 0x0A:
                raise die_read("newline expected")
    except _ReadError as exc:
        raise die_read(oserror_text(exc.exc)) from None
    except MemoryError:
        raise die_write("out of memory") from None
    # cdb_make_finish(): 8 bytes per slot, two slots per record.
    if too_large or pos + 16 * count > _LIMIT:
        raise die_write("out of memory")


# ---------------------------------------------------------------------------
# the command


def _check_args(command: str, args: list[str]) -> None:
    counts = {"cdbmake": (2, 2), "dump": (1, 1), "stats": (1, 1), "get": (2, 3)}
    low, high = counts[command]
    if not low <= len(args) <= high:
        raise usage(_USAGE[command])


def main(command: str, args: list[str]) -> int:
    """``pycdb cdbmake|dump|get|stats ARGS``: the freecdb program's stdout
    bytes and exit code; failures raise :class:`Fatal`."""
    if command not in _USAGE:
        raise usage("pycdb cdbmake|dump|get|stats ...")
    if args in (["-h"], ["--help"]):
        sys.stdout.write(f"usage: {_USAGE[command]}\n{_HELP[command]}\n")
        sys.stdout.flush()
        return 0
    _check_args(command, args)
    if command == "cdbmake":
        if not args[0] or not args[1]:
            raise usage(_USAGE[command])
        stdin = sys.stdin
        _cdbmake(args[0], args[1], None if stdin is None else stdin.buffer)
        return 0
    skip = 0
    if command == "get":
        if not args[1]:
            raise usage(_USAGE[command])
        if len(args) == 3:
            parsed = _parse_skip(args[2])
            if parsed is None:
                raise usage(_USAGE[command])
            skip = parsed
    out, raw = _output()
    if command == "dump":
        _dump(args[0], out, raw)
        return 0
    with _CdbFile(args[0]) as cdb:
        if command == "stats":
            _stats(cdb, out, raw)
        else:
            return _get(cdb, os.fsencode(args[1]), skip, out, raw)
    return 0


__all__ = ["Finder", "main"]
