"""Structural validation of a cdb file: is every byte where cdbmake would
have put it?

A lookup-level check (open, look every key up again) misses whole classes
of damage: a record no slot reaches, a slot pointing into the middle of a
record, tables that overlap or leave bytes unaccounted for.
:func:`validate` walks the file once and reports each of those as a
:class:`pycdb.findings.Finding` naming the offset (and the key, when
there is one).  Every file that cdbmake or tcprules writes is sound; the
rules-level validation (tcprules data, keys tcprules can produce) lives
in :mod:`pycdb.rules.soundness` and builds on this, through the
``batches`` hook.

How it stays fast on big files: the records are walked once
(:func:`pycdb._format.records`, in batches: :func:`walk`), keeping two
32-bit words per record (hash and position), and each hash table is first
compared with the table cdbmake would build from those records
(:func:`pycdb._format.place`: same placement, same order).  A table that
matches is sound by construction, so the slot-by-slot diagnosis, which
costs Python work per slot, runs only on tables that differ.  A file
whose every table, header entry and byte matches is ``canonical``: byte
for byte what cdbmake (and tcprules) write for its records in file order
(docs/format.md §5), which is what decompilation needs to promise a
byte-identical rebuild.
"""

from __future__ import annotations

import dataclasses
import os
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from . import _backend
from ._files import mapped
from ._format import (
    CDB64,
    HEADER_SIZE,
    PAIR,
    WORD,
    Buffer,
    Header,
    is_cdb64,
    place,
    read_header,
    records,
    words,
)
from ._text import quote
from .errors import CorruptError
from .findings import Finding

__all__ = [
    "BATCH",
    "KEY_SHOWN",
    "Batch",
    "ValidationReport",
    "broken_record",
    "describe",
    "record_area_end",
    "validate",
    "validate_bytes",
    "walk",
]

#: Records per batch: big enough that per-batch costs vanish, small
#: enough that a batch's keys are a few megabytes at most.
BATCH = 1 << 16

#: How many bytes of a key a message shows (a key may be megabytes long):
#: ``quote(key, KEY_SHOWN)``, here and in the rules findings.
KEY_SHOWN = 60


def _key(key: bytes) -> str:
    return quote(key, KEY_SHOWN)


@dataclasses.dataclass
class ValidationReport:
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
    #: for a tcprules database, the dialect whose keys it was checked
    #: against (a name of pycdb.rules.dialects), and why that one ("" for
    #: the default, ucspi-tcp 0.88, when the keys say nothing)
    dialect: str | None = None
    dialect_basis: str = ""
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
        """Record a finding (an error), or only count it once ``limit``
        are kept."""
        if len(self.findings) < self.limit:
            self.findings.append(Finding(code, message, offset=offset, key=key))
        else:
            self.suppressed += 1

    def keep(self, finding: Finding) -> None:
        """:meth:`add` for a finding already made."""
        if len(self.findings) < self.limit:
            self.findings.append(finding)
        else:
            self.suppressed += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; each finding as :meth:`pycdb.findings.Finding.as_dict`."""
        return {
            "file": self.name,
            "size": self.size,
            "kind": self.kind,
            "kind_basis": self.kind_basis,
            "dialect": self.dialect,
            "dialect_basis": self.dialect_basis,
            "records": self.records,
            "sound": self.sound,
            "canonical": self.canonical,
            "layout_note": self.layout_note,
            "findings": [f.as_dict() for f in self.findings],
            "suppressed": self.suppressed,
        }


def describe(finding: Finding) -> str:
    """A finding as validation prints it after the file's name:
    ``offset N: message``, or the message alone for the whole file."""
    if finding.offset is None:
        return finding.message
    return f"offset {finding.offset}: {finding.message}"


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


def walk(
    buf: Buffer, eod: int, name: str = "<bytes>", *, data: bool = False, size: int = BATCH
) -> Iterator[Batch]:
    """The records from byte 2048 up to ``eod`` (the walk of
    :func:`pycdb._format.records`), in batches of ``size`` with their keys
    sliced, and their data when ``data`` is true.  Where a record runs
    into the hash tables, the batch of the records before it comes out,
    then the walk's :class:`CorruptError` (its ``offset`` the record's;
    :func:`broken_record` words it as a finding)."""
    each = records(buf, eod, name)
    while True:
        positions: list[int] = []
        keys: list[bytes] = []
        dlens: list[int] = []
        datas: list[bytes] | None = [] if data else None
        put_pos, put_key, put_dlen = positions.append, keys.append, dlens.append
        broken: CorruptError | None = None
        try:
            if datas is None:
                for pos, klen, dlen in islice(each, size):
                    put_pos(pos)
                    put_key(buf[pos + 8 : pos + 8 + klen])
                    put_dlen(dlen)
            else:
                put_data = datas.append
                for pos, klen, dlen in islice(each, size):
                    k = pos + 8
                    d = k + klen
                    put_pos(pos)
                    put_key(buf[k:d])
                    put_dlen(dlen)
                    put_data(buf[d : d + dlen])
        except CorruptError as exc:
            broken = exc
        if positions:
            yield Batch(buf, positions, keys, dlens, datas)
        if broken is not None:
            raise broken
        if len(positions) < size:
            return


def broken_record(buf: Buffer, eod: int, pos: int) -> str:
    """What is wrong with the record at ``pos`` that :func:`walk` stopped
    at, as a finding says it: it runs into the hash tables at ``eod``."""
    if pos + 8 > eod:
        return f"the record at {pos} runs into the hash tables at {eod}"
    klen, dlen = PAIR.unpack_from(buf, pos)
    return (
        f"the record at {pos} ({klen}-byte key, {dlen}-byte data) runs "
        f"into the hash tables at {eod}"
    )


def record_area_end(header: Header, size: int) -> int:
    """Where the records end: the lowest table position past the header
    (the file's end if none is).  Lenient where
    :func:`pycdb._format.parse_header` refuses: a header entry that
    points inside the header is reported, and the records still read."""
    return min(min((pos for pos, _ in header if pos >= HEADER_SIZE), default=size), size)


def _key_at(buf: Buffer, pos: int) -> bytes:
    klen = PAIR.unpack_from(buf, pos)[0]
    return bytes(buf[pos + 8 : pos + 8 + klen])


def _place(hashes: array[int], positions: array[int], slots: int) -> tuple[array[int], array[int]]:
    """The table cdbmake builds, as arrays of words to compare with the file's."""
    hs, ps = place(hashes, positions, slots)
    return array(WORD, hs), array(WORD, ps)


def validate_bytes(
    buf: Buffer,
    name: str = "<bytes>",
    *,
    limit: int = 1000,
    records: Callable[[int, int, int, int], None] | None = None,
    batches: Callable[[Batch], None] | None = None,
) -> ValidationReport:
    """Validate the cdb in ``buf`` (bytes, or an mmap), calling it ``name``.

    ``records``, if given, is called as ``records(pos, klen, dpos, dlen)``
    for each record walked; ``batches``, if given, with each
    :class:`Batch` of records walked (far cheaper per record).  Both see
    the records in file order, up to the first that runs into the hash
    tables.  At most ``limit`` findings are kept; the rest are counted.
    """
    if isinstance(buf, (bytearray, memoryview)):
        buf = bytes(buf)  # slices must be bytes (hashable, hashed in bulk)
    size = len(buf)
    report = ValidationReport(name, size, limit=limit)
    add = report.add
    if size < HEADER_SIZE:
        add("short", f"the file is {size} bytes, shorter than the 2048-byte header", size)
        return report
    backend = _backend.current()
    hash_ = backend.hash
    hash_many = backend.hash_many
    header = read_header(buf)
    if is_cdb64(buf):  # its 32-bit reading is nonsense: say what it is
        add("cdb64", f"{CDB64}", 0)
        return report

    # -- the header: every table inside the file, past the header --------
    tables_ok = [True] * 256
    for i, (pos, slots) in enumerate(header):
        if pos < HEADER_SIZE:
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
    positions = array(WORD)
    by_hash = [array(WORD) for _ in range(256)]
    by_pos = [array(WORD) for _ in range(256)]
    try:
        for b in walk(buf, eod, name, data=batches is not None):
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
    except CorruptError as exc:
        assert exc.offset is not None
        add("record", broken_record(buf, eod, exc.offset), exc.offset)
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
            table = words(buf, hpos, 2 * slots)
            if table[0::2] == hs and table[1::2] == ps:
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
        buf: Buffer,
        header: Header,
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
        table = words(buf, hpos, 2 * slots)
        hs, ps = table[0::2], table[1::2]
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
                    f"record at {p} (key {_key(key)}) hashes to {real:#x}",
                    where,
                    key,
                )
            elif h & 255 != t:
                add(
                    "slot-hash",
                    f"slot {s} of hash table {t} holds the record at {p} (key "
                    f"{_key(key)}), whose hash belongs in table {h & 255}",
                    where,
                    key,
                )
            if p in seen:
                ft, fs = seen[p]
                add(
                    "duplicate-slot",
                    f"the record at {p} (key {_key(key)}) is referenced "
                    f"twice: slot {fs} of table {ft} and slot {s} of table {t}",
                    where,
                    key,
                )
            elif real & 255 != t and self.canonical[real & 255]:
                add(
                    "duplicate-slot",
                    f"the record at {p} (key {_key(key)}) is referenced "
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
        # Reachability (docs/format.md §7): from a record's home slot, the
        # walk must meet its slot before any empty one.
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
                        f"the record at {p} (key {_key(key)}) sits in slot {s} "
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
                    f"the {len(group)} records for key {_key(key)} come back from a "
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
                        f"the record at {p} (key {_key(key)}) is in no slot of its hash "
                        f"table {t}: lookups never find it",
                        p,
                        key,
                    )


def validate(
    path: str | os.PathLike[str],
    *,
    limit: int = 1000,
    records: Callable[[int, int, int, int], None] | None = None,
    batches: Callable[[Batch], None] | None = None,
) -> ValidationReport:
    """Validate the cdb file at ``path`` (see :func:`validate_bytes`).  A
    regular file is mapped; a pipe (``/dev/stdin``) or FIFO is read to
    its end, up to the format's 4 GiB (a FIFO no one writes to reads as
    empty, at once); OSError when it cannot be read, FileTypeError
    (:mod:`pycdb._files`) for a device such as ``/dev/zero``."""
    with mapped(path, streams=True) as buf:
        return validate_bytes(buf, os.fsdecode(path), limit=limit, records=records, batches=batches)
