"""freecdb's reading of a cdb, reproduced: what ``pycdb get`` and ``pycdb
stats`` answer with, so that their output is freecdb's on any file
(docs/format.md §10, "Stricter than djb's programs", and §11).

* Lookups are an emulation of freecdb's ``cdb_findnext()``
  (:class:`Finder`), not :class:`pycdb.Reader`.  It checks nothing but
  that each read lies inside the file: the header is not validated, a
  record may sit anywhere (even inside the header), 32-bit positions wrap,
  and a table without an empty slot is simply a miss after ``hslots``
  probes.  A stricter reader would print different bytes.  A crafted
  table whose slot count wraps the 32-bit end is walked by computing the
  periodic part instead of probing up to 2**32 slots.
* cdbstats' probe counts (:class:`Walks`) come without probing slot by
  slot where freecdb would take quadratic time (duplicate keys, thousands
  of keys with one hash): walks are resumed per key, and a crowded table
  gets an index (:class:`_TableIndex`).

The file is mapped (:class:`CdbFile`) as ``cdb_init()`` maps it; the
header words, the layout constants and the 32-bit arithmetic are
:mod:`pycdb._format`'s, the hash the active backend's.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable

from .. import _backend
from .._files import mapped
from .._format import MASK, PAIR, Buffer, read_header
from ._util import Fatal
from .cdbtools import CHUNK, PROTO, TRUNCATED, unreadable

__all__ = ["CdbFile", "Finder", "Walks"]


class CdbFile:
    """The whole file mapped read-only (:func:`pycdb._files.map_file`): the
    mapping ``cdb_init()`` makes for lookups, and the bytes cdbstats reads
    from standard input.  Only a regular file maps; anything else is the
    command's fatal error (:func:`pycdb.cli.cdbtools.unreadable`).

    freecdb's ``cdb_read()`` only checks that a read lies inside the file,
    so ``size`` is the one bound every emulated read is checked against."""

    def __init__(self, path: str) -> None:
        self._held = contextlib.ExitStack()
        try:
            self.buf: Buffer = self._held.enter_context(mapped(path))
        except OSError as exc:
            raise unreadable(path, exc) from None
        self.size = len(self.buf)

    def close(self) -> None:
        self._held.close()

    def __enter__(self) -> CdbFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

    def __init__(self, cdb: CdbFile, key: bytes, khash: int | None = None) -> None:
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
        klen, dlen = PAIR.unpack_from(buf, pos)
        n = self._klen
        if klen != n:
            return 0
        start = (pos + 8) & MASK
        key = self._key
        if start + n <= min(size, MASK + 1):
            if buf[start : start + n] != key:
                return 0
        else:
            # match(): 32-byte pieces, each read checked on its own, so a
            # difference before the end of the file is a miss, not an error.
            off = 0
            while off < n:
                m = min(32, n - off)
                p = (start + off) & MASK
                if p + m > size:
                    return -1
                if buf[p : p + m] != key[off : off + m]:
                    return 0
                off += m
        self.dlen = dlen
        self.dpos = (pos + 8 + n) & MASK
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
            hpos, hslots = PAIR.unpack_from(buf, off)
            self.hslots = hslots
            if not hslots:
                return 0
            self._hpos = hpos
            self._kpos = (hpos + ((((u >> 8) % hslots) << 3) & MASK)) & MASK
            self._end = (hpos + ((hslots << 3) & MASK)) & MASK
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
            h, pos = PAIR.unpack_from(buf, kpos)
            if not pos:
                return 0
            loop = self.loop = self.loop + 1
            kpos = (kpos + 8) & MASK
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
        for j, (h, pos) in enumerate(PAIR.iter_unpack(buf[hpos : hpos + 8 * n])):
            if not pos:
                self.empties.append(j)
                continue
            self.at.setdefault((h, pos), []).append(j)
            tag: tuple[int, bytes] | None
            if pos + 8 > size:
                tag = None  # the record header cannot be read
            else:
                klen = PAIR.unpack_from(buf, pos)[0]
                if klen > CHUNK or pos + 8 + klen <= size:
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
            raise Fatal(111, PROTO)  # the first slot read is past the end
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
                    raise Fatal(111, PROTO)
        if found is not None:
            return found + 1
        raise Fatal(111, TRUNCATED if miss else PROTO)


class Walks:
    """The lookups cdbstats makes, one per record: ``cdb_findnext()`` for
    the record's key until the data position is the record's own.

    Three ways to the same answer, cheapest first: a direct walk that
    stops at the first complication (:func:`_quick_loop`); a table index
    once a table has cost many probes (:class:`_TableIndex`); and the full
    :class:`Finder` emulation, whose walks are kept and resumed when they
    got long, because the walk for a key is the same every time: N copies
    of one key then cost one walk, not N*(N+1)/2 probes."""

    KEEP = 8  # walks shorter than this are cheaper to redo than to keep

    def __init__(self, cdb: CdbFile) -> None:
        self._cdb = cdb
        self._buf = cdb.buf
        self._size = cdb.size
        self._heads = read_header(cdb.buf)  # the caller checked: 2048 bytes at least
        self.hash: Callable[[bytes], int] = _backend.current().hash
        self._kept: dict[bytes, tuple[Finder, dict[int, int]]] = {}
        self._spent = [0] * 256
        self._index: dict[int, _TableIndex] = {}

    def loop(self, key: bytes, start: int, dpos: int, u: int) -> int:
        """``c.loop`` when cdbstats' lookup for ``key`` (hash ``u``) finds
        the record at ``start`` (its data at ``dpos``); Fatal as cdbstats
        dies otherwise."""
        t = u & 255
        index = self._index.get(t)
        if index is not None:
            return index.loop(u, start, key)
        hpos, hslots = self._heads[t]
        size = self._size
        spent = 0
        if hslots and hpos + 8 * hslots <= size:
            loop = _quick_loop(self._buf, hpos, hslots, u, start)
            if loop > 0:
                return loop
            spent = -loop
        spent = self._spent[t] = self._spent[t] + spent
        if spent > _INDEX_AFTER and t not in self._index:
            in_file = min(hslots, max(0, size - hpos) // 8)
            if hslots and hpos + 8 * hslots <= MASK + 1 and spent > _INDEX_AFTER + 4 * in_file:
                index = self._index[t] = _TableIndex(self._buf, size, hpos, hslots)
                return index.loop(u, start, key)
        return self._walk(key, dpos, u)

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
                raise Fatal(111, TRUNCATED)
            r = finder.findnext()
            if r < 0:
                raise Fatal(111, PROTO)
            if r == 0:
                raise Fatal(111, TRUNCATED)
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
    the probes spent before giving up (:class:`Walks` then asks the
    others): the walk meets the record's own slot with no other slot of
    the same hash (and no empty slot) before it, in a table that lies
    inside the file (the caller checks).  The walk is then cdb_findnext()'s exactly: no record
    is read before the match, and the match is the record the key was
    just read from."""
    end = hpos + 8 * hslots
    kpos = hpos + 8 * ((u >> 8) % hslots)
    loop = 0
    unpack = PAIR.unpack_from
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
