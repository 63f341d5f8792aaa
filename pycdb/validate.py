"""Structural validation of a cdb file: is every byte where cdbmake would
have put it?

A lookup-level check (open, look every key up again) misses whole classes
of damage: a record no slot reaches, a slot pointing into the middle of a
record, tables that overlap or leave bytes unaccounted for.  ``check``
walks the file once and reports each of those as a :class:`Finding` naming
the offset (and the key, when there is one).  Every file that cdbmake or
tcprules writes is sound; the rules-level checks (tcprules data, keys
tcprules can produce) live in :mod:`pycdb.rules.validate` and build on
this, through the ``batches`` hook.

How it stays fast on big files: the records are walked once, in batches,
keeping two 32-bit words per record (hash and position), and each hash
table is first compared with the table cdbmake would build from those
records (same placement, same order).  A table that matches is sound by
construction, so the slot-by-slot diagnosis, which costs Python work per
slot, runs only on tables that differ.  A file whose every table, header
entry and byte matches is ``canonical``: byte for byte what cdbmake (and
tcprules) write for its records in file order, which is what
decompilation needs to promise a byte-identical rebuild.
"""

from __future__ import annotations

import dataclasses
import errno
import mmap
import os
import stat
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from . import _backend
from ._format import LIMIT, place

__all__ = [
    "Batch",
    "Finding",
    "Report",
    "check",
    "check_bytes",
    "header_of",
    "open_buffer",
    "record_area_end",
    "show",
    "walk",
]

_PAIR = struct.Struct("<II")
_WORD = "I" if array("I").itemsize == 4 else "L"
_SWAP = sys.byteorder != "little"

#: Records per batch: big enough that per-batch costs vanish, small
#: enough that a batch's keys are a few megabytes at most.
BATCH = 1 << 16


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing wrong with a file.

    ``code`` is a stable identifier for scripts (``slot-hash``,
    ``unreachable``, ...); ``offset`` the byte offset it concerns (None for
    whole-file findings); ``key`` the record's key when one is involved.
    """

    code: str
    message: str
    offset: int | None = None
    key: bytes | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the key as text with one character per byte
        (``.encode("latin-1")`` gives the bytes back)."""
        return {
            "code": self.code,
            "offset": self.offset,
            "key": None if self.key is None else self.key.decode("latin-1"),
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"offset {self.offset}: " if self.offset is not None else ""
        return f"{where}{self.message}"


@dataclasses.dataclass
class Report:
    """The findings for one file; ``sound`` when there are none."""

    name: str
    size: int
    records: int = 0
    findings: list[Finding] = dataclasses.field(default_factory=list)
    #: findings left out past ``limit`` (counted, not kept)
    suppressed: int = 0
    #: what kind of database the extra checks treated it as ("cdb", "tcprules")
    kind: str = "cdb"
    #: why that kind was assumed (for people: "recognised: ...", "--rules")
    kind_basis: str = ""
    #: no structural finding, and byte for byte what cdbmake writes for
    #: these records in file order (rules findings do not change it)
    canonical: bool = False
    #: where the file first departs from cdbmake's layout (sound or not)
    layout_note: str = ""
    #: the most findings kept
    limit: int = 1000

    @property
    def sound(self) -> bool:
        return not self.findings and not self.suppressed

    def add(
        self, code: str, message: str, offset: int | None = None, key: bytes | None = None
    ) -> None:
        """Record a finding, or only count it once ``limit`` are kept."""
        if len(self.findings) < self.limit:
            self.findings.append(Finding(code, message, offset, key))
        else:
            self.suppressed += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "size": self.size,
            "kind": self.kind,
            "kind_basis": self.kind_basis,
            "records": self.records,
            "sound": self.sound,
            "canonical": self.canonical,
            "layout_note": self.layout_note,
            "findings": [f.as_dict() for f in self.findings],
            "suppressed": self.suppressed,
        }


@dataclasses.dataclass(frozen=True)
class Batch:
    """Consecutive records, in file order, for checks that look at every
    record (the rules layer): parallel lists of record positions, keys
    and data lengths, the data too when the walk was asked for it, and
    the buffer they were read from."""

    buf: Any
    positions: list[int]
    keys: list[bytes]
    dlens: list[int]
    datas: list[bytes] | None = None

    def data(self) -> list[bytes]:
        """Every record's data."""
        if self.datas is not None:
            return self.datas
        buf = self.buf
        return [
            buf[p + 8 + len(k) : p + 8 + len(k) + d]
            for p, k, d in zip(self.positions, self.keys, self.dlens)
        ]


def show(key: bytes, limit: int = 60) -> str:
    """A key for a message, quoted, with Python's escapes for anything
    not printable ASCII (a control byte can never move the cursor), cut
    at ``limit`` bytes: ``'1.2.3.4'``, ``'caf\\xc3\\xa9'``."""
    text = repr(key[:limit])[1:]  # without the b of bytes' repr
    return text + ("..." if len(key) > limit else "")


def _key_at(buf: Any, pos: int) -> bytes:
    klen = _PAIR.unpack_from(buf, pos)[0]
    return bytes(buf[pos + 8 : pos + 8 + klen])


def _words(buf: Any, pos: int, count: int) -> array[int]:
    """``count`` little-endian 32-bit words from ``pos``."""
    out = array(_WORD, bytes(buf[pos : pos + 4 * count]))
    if _SWAP:  # pragma: no cover - big-endian hosts
        out.byteswap()
    return out


def walk(
    buf: Any,
    eod: int,
    add: Callable[..., None] | None = None,
    batch: int = BATCH,
    data: bool = False,
) -> Iterator[Batch]:
    """The records from byte 2048 up to ``eod``, in file order, in
    batches (with their data sliced too when ``data`` is true).  Where a
    record runs into the hash tables the walk stops, after telling ``add``
    (a :meth:`Report.add`) when one is given."""
    unpack = _PAIR.unpack_from
    pos = 2048
    last = eod - 8  # the last position with room for a record's lengths
    while pos < eod:
        positions: list[int] = []
        keys: list[bytes] = []
        dlens: list[int] = []
        datas: list[bytes] | None = [] if data else None
        put_pos, put_key, put_dlen = positions.append, keys.append, dlens.append
        put_data = datas.append if datas is not None else None
        broken = ""
        for _ in range(batch):
            if pos > last:
                broken = f"the record at {pos} runs into the hash tables at {eod}"
                break
            klen, dlen = unpack(buf, pos)
            k = pos + 8
            end = k + klen + dlen
            if end > eod:
                broken = (
                    f"the record at {pos} ({klen}-byte key, {dlen}-byte data) runs "
                    f"into the hash tables at {eod}"
                )
                break
            put_pos(pos)
            put_key(buf[k : k + klen])
            put_dlen(dlen)
            if put_data is not None:
                put_data(buf[k + klen : end])
            pos = end
            if pos >= eod:
                break
        if positions:
            yield Batch(buf, positions, keys, dlens, datas)
        if broken:
            if add is not None:
                add("record", broken, pos)
            return


def header_of(buf: Any) -> list[tuple[int, int]]:
    """The 256 (position, slots) header entries, unchecked."""
    words = _words(buf, 0, 512)
    return list(zip(words[0::2], words[1::2]))


def record_area_end(header: list[tuple[int, int]], size: int) -> int:
    """Where the records end: the lowest table position past the header
    (the file's end if none is)."""
    return min(min((pos for pos, _ in header if pos >= 2048), default=size), size)


def _place(hashes: array[int], positions: array[int], slots: int) -> tuple[array[int], array[int]]:
    """The table cdbmake builds (the pure writer's own placement)."""
    hs, ps = place(hashes, positions, slots)
    return array(_WORD, hs), array(_WORD, ps)


def check_bytes(
    buf: Any,
    name: str = "<bytes>",
    limit: int = 1000,
    records: Callable[[int, int, int, int], None] | None = None,
    *,
    batches: Callable[[Batch], None] | None = None,
) -> Report:
    """Validate the cdb in ``buf`` (bytes or an mmap).

    ``records``, if given, is called as ``records(pos, klen, dpos, dlen)``
    for each record walked; ``batches``, if given, with each
    :class:`Batch` of records walked (far cheaper per record).  Both see
    the records in file order, up to the first that runs into the hash
    tables.  At most ``limit`` findings are kept; the rest are counted.
    """
    if isinstance(buf, (bytearray, memoryview)):
        buf = bytes(buf)  # slices must be bytes (hashable, hashed in bulk)
    size = len(buf)
    report = Report(name, size, limit=limit)
    add = report.add
    if size < 2048:
        add("short", f"the file is {size} bytes, shorter than the 2048-byte header", size)
        return report
    backend = _backend.current()
    hash_ = backend.hash
    hash_many: Callable[[list[bytes]], list[int]] = getattr(
        backend, "hash_many", lambda keys: list(map(hash_, keys))
    )
    header = header_of(buf)

    # -- the header: every table inside the file, past the header --------
    tables_ok = [True] * 256
    for i, (pos, slots) in enumerate(header):
        if pos < 2048:
            add(
                "header", f"header entry {i} puts hash table {i} at {pos}, inside the header", 8 * i
            )
            tables_ok[i] = False
        elif pos + 8 * slots > size:
            add(
                "header",
                f"header entry {i} puts hash table {i} at {pos}..{pos + 8 * slots}, "
                f"past the end of the file ({size} bytes)",
                8 * i,
            )
            tables_ok[i] = False
        elif slots % 2:
            add(
                "slot-count",
                f"hash table {i} has an odd number of slots ({slots}); cdbmake "
                "gives each table two slots per record",
                8 * i,
            )
    eod = record_area_end(header, size)

    # -- the records, in file order: each one's hash and position, by table
    positions = array(_WORD)
    by_hash = [array(_WORD) for _ in range(256)]
    by_pos = [array(_WORD) for _ in range(256)]
    for b in walk(buf, eod, add, data=batches is not None):
        positions.extend(b.positions)
        for h, p in zip(hash_many(b.keys), b.positions):
            t = h & 255
            by_hash[t].append(h)
            by_pos[t].append(p)
        if batches is not None:
            batches(b)
        if records is not None:
            for p, k, d in zip(b.positions, b.keys, b.dlens):
                records(p, len(k), p + 8 + len(k), d)
    report.records = len(positions)
    counts = [len(a) for a in by_pos]

    # -- table layout: after the records, no overlap, no bytes left over --
    spans = sorted(
        (pos, pos + 8 * slots, i) for i, (pos, slots) in enumerate(header) if tables_ok[i]
    )
    overlapping = [False] * 256
    cursor = eod
    for start, end, i in spans:
        if start > cursor:
            add(
                "leftover", f"bytes {cursor}..{start} belong to no record and no hash table", cursor
            )
        elif start < cursor and end > start:
            add("layout", f"hash table {i} ({start}..{end}) overlaps another table", start)
            overlapping[i] = True
        cursor = max(cursor, end)
    if cursor < size and all(tables_ok):
        add(
            "leftover",
            f"bytes {cursor}..{size} at the end belong to no record and no hash table",
            cursor,
        )

    # -- every table: first against cdbmake's, then slot by slot ----------
    differs: list[int] = []
    for t, (hpos, slots) in enumerate(header):
        if not tables_ok[t]:
            differs.append(t)
            continue
        if slots != 2 * counts[t]:
            add(
                "slot-count",
                f"hash table {t} has {slots} slots for the {counts[t]} records "
                f"whose hash ends in byte {t}; cdbmake gives it {2 * counts[t]}",
                8 * t,
            )
        elif not slots:
            continue
        elif not overlapping[t]:
            hs, ps = _place(by_hash[t], by_pos[t], slots)
            words = _words(buf, hpos, 2 * slots)
            if words[0::2] == hs and words[1::2] == ps:
                continue
        differs.append(t)
    diagnose = _Diagnosis(buf, header, positions, by_pos, differs, hash_, add)
    # Tables that overlap (reported above) are gone through too, within a
    # budget of twice the file's worth of slots: a hostile header can make
    # all 256 tables cover the whole file.  The records of one left out
    # are not reported as unindexed (its slots may well hold them).
    budget = 2 * (size // 8) + 512
    for t in differs:
        if not tables_ok[t]:
            continue  # its records are unindexed, unless another table has them
        slots = header[t][1]
        if overlapping[t] and slots > budget:
            diagnose.unknown.add(t)
            continue
        budget -= slots
        diagnose.table(t)
    diagnose.finish()

    # -- byte for byte what cdbmake writes? --------------------------------
    expected = eod
    first_off: str = ""
    for t, (hpos, slots) in enumerate(header):
        if (hpos, slots) != (expected, 2 * counts[t]) and not first_off:
            first_off = (
                f"header entry {t} is ({hpos}, {slots}); cdbmake writes ({expected}, "
                f"{2 * counts[t]})"
            )
        expected += 16 * counts[t]
    if differs and not first_off:
        first_off = f"hash table {differs[0]} is not the one cdbmake builds from its records"
    if not first_off and size != expected:
        first_off = f"the file is {size} bytes; cdbmake writes {expected}"
    report.canonical = not first_off and report.sound  # no rules findings yet
    report.layout_note = first_off
    return report


class _Diagnosis:
    """Slot by slot, for the tables that differ from cdbmake's: what is
    wrong, and with which record."""

    def __init__(
        self,
        buf: Any,
        header: list[tuple[int, int]],
        positions: array[int],
        by_pos: list[array[int]],
        differs: list[int],
        hash_: Callable[[bytes], int],
        add: Callable[..., None],
    ) -> None:
        self.buf = buf
        self.header = header
        self.positions = positions
        self.by_pos = by_pos
        self.hash = hash_
        self.add = add
        #: record position -> (table, slot) of the first slot seen for it
        self.seen: dict[int, tuple[int, int]] = {}
        #: the tables that differ from cdbmake's: their records must each
        #: be found in some slot of them
        self.differs = differs
        #: tables not gone through: whether their records are found is unknown
        self.unknown: set[int] = set()
        #: the others hold each of their records in exactly one slot
        self.canonical = [True] * 256
        for t in differs:
            self.canonical[t] = False

    def _is_record(self, p: int) -> bool:
        i = bisect_left(self.positions, p)
        return i < len(self.positions) and self.positions[i] == p

    def table(self, t: int) -> None:
        buf, add, hash_ = self.buf, self.add, self.hash
        hpos, slots = self.header[t]
        words = _words(buf, hpos, 2 * slots)
        hs, ps = words[0::2], words[1::2]
        seen = self.seen
        for s in range(slots):
            h, p = hs[s], ps[s]
            where = hpos + 8 * s
            if not p:
                if h:
                    add("slot", f"slot {s} of hash table {t} is empty but holds hash {h:#x}", where)
                continue
            if not self._is_record(p):
                add(
                    "slot",
                    f"slot {s} of hash table {t} points at {p}, which is not the start of a record",
                    where,
                )
                continue
            key = _key_at(buf, p)
            real = hash_(key)
            if real != h:
                add(
                    "slot-hash",
                    f"slot {s} of hash table {t} holds hash {h:#x}, but the "
                    f"record at {p} (key {show(key)}) hashes to {real:#x}",
                    where,
                    key,
                )
            elif h & 255 != t:
                add(
                    "slot-hash",
                    f"slot {s} of hash table {t} holds the record at {p} (key "
                    f"{show(key)}), whose hash belongs in table {h & 255}",
                    where,
                    key,
                )
            if p in seen:
                ft, fs = seen[p]
                add(
                    "duplicate-slot",
                    f"the record at {p} (key {show(key)}) is referenced "
                    f"twice: slot {fs} of table {ft} and slot {s} of table {t}",
                    where,
                    key,
                )
            elif real & 255 != t and self.canonical[real & 255]:
                add(
                    "duplicate-slot",
                    f"the record at {p} (key {show(key)}) is referenced "
                    f"twice: by its own hash table {real & 255} and by slot {s} of table {t}",
                    where,
                    key,
                )
            else:
                seen[p] = (t, s)
        if slots and all(ps):
            add(
                "full-table",
                f"hash table {t} ({slots} slots) has no empty slot; a lookup "
                "for an absent key never ends",
                hpos,
            )
        # Reachability: from a record's home slot, the walk must meet its
        # slot before any empty one.
        groups: dict[bytes, list[int]] = {}
        for p in self.by_pos[t]:
            if seen.get(p, (-1, 0))[0] != t:
                continue
            s = seen[p][1]
            key = _key_at(buf, p)
            groups.setdefault(key, []).append(p)
            home = (hash_(key) >> 8) % slots
            j = home
            while j != s:
                if not ps[j]:
                    add(
                        "unreachable",
                        f"the record at {p} (key {show(key)}) sits in slot {s} "
                        f"of hash table {t}, but the empty slot {j} lies between it and its "
                        f"home slot {home}: lookups never reach it",
                        p,
                        key,
                    )
                    break
                j = j + 1 if j + 1 < slots else 0
        # Records with the same key must come back from a lookup in the
        # order they are stored (the first is "the" value).
        for key, group in groups.items():
            if len(group) < 2:
                continue
            home = (hash_(key) >> 8) % slots
            order = sorted(group, key=lambda p: (seen[p][1] - home) % slots)
            if order != group:
                add(
                    "duplicate-order",
                    f"the {len(group)} records for key {show(key)} come back from a "
                    "lookup in a different order than they are stored, so the first "
                    "value is not the first one added",
                    order[0],
                    key,
                )

    def finish(self) -> None:
        """Every record of a table that differs is in some slot."""
        for t in self.differs:
            if t in self.unknown:
                continue
            for p in self.by_pos[t]:
                if p not in self.seen:
                    key = _key_at(self.buf, p)
                    self.add(
                        "unindexed",
                        f"the record at {p} (key {show(key)}) is in no slot of its hash "
                        f"table {t}: lookups never find it",
                        p,
                        key,
                    )


def open_buffer(path: str | os.PathLike[str]) -> tuple[Any, Callable[[], None]]:
    """(the file's bytes, a function that releases them): a regular file
    is mapped (an empty one is ``b""``), a pipe (``/dev/stdin``) read to
    its end, up to the format's 4 GiB.  OSError when it cannot be read,
    for anything else (a terminal, ``/dev/zero``, a disk), and for a pipe
    that runs on past 4 GiB."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode):
            if not st.st_size:
                return b"", lambda: None
            try:
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                return f.read(), lambda: None
            return m, m.close
        if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
            raise OSError(errno.EINVAL, "not a regular file or a pipe")
        data = f.read(LIMIT + 1)
        if len(data) > LIMIT:
            raise OSError(errno.EFBIG, "more than a cdb's 4 GiB")
        return data, lambda: None


def check(
    path: str | os.PathLike[str],
    limit: int = 1000,
    records: Callable[[int, int, int, int], None] | None = None,
    *,
    batches: Callable[[Batch], None] | None = None,
) -> Report:
    """Validate the cdb file at ``path``; OSError when it cannot be read."""
    buf, release = open_buffer(path)
    try:
        return check_bytes(buf, os.fsdecode(path), limit, records, batches=batches)
    finally:
        release()
