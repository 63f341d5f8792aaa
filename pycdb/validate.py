"""Structural validation of a cdb file: is every byte where cdbmake would
have put it?

A lookup-level check (open, look every key up again) misses whole classes
of damage: a record no slot reaches, a slot pointing into the middle of a
record, tables that overlap or leave bytes unaccounted for.  ``check``
walks the file once and reports each of those as a :class:`Finding` naming
the offset (and the key, when there is one).  Every file that cdbmake or
tcprules writes is sound; the rules-level checks (tcprules data, keys
tcprules can produce) live in :mod:`pycdb.rules.validate` and build on
this.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
from typing import Any, Callable

from . import _backend

__all__ = ["Finding", "Report", "check", "check_bytes"]

_PAIR = struct.Struct("<II")


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

    @property
    def sound(self) -> bool:
        return not self.findings and not self.suppressed

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "size": self.size,
            "kind": self.kind,
            "records": self.records,
            "sound": self.sound,
            "findings": [f.as_dict() for f in self.findings],
            "suppressed": self.suppressed,
        }


def _show(key: bytes, limit: int = 60) -> str:
    text = repr(key[:limit])
    return text + ("..." if len(key) > limit else "")


class _Collector:
    def __init__(self, report: Report, limit: int) -> None:
        self.report = report
        self.limit = limit

    def __call__(
        self, code: str, message: str, offset: int | None = None, key: bytes | None = None
    ) -> None:
        if len(self.report.findings) < self.limit:
            self.report.findings.append(Finding(code, message, offset, key))
        else:
            self.report.suppressed += 1


def check_bytes(
    buf: Any,
    name: str = "<bytes>",
    limit: int = 1000,
    records: Callable[[int, int, int, int], None] | None = None,
) -> Report:
    """Validate the cdb in ``buf`` (bytes or an mmap).

    ``records``, if given, is called as ``records(pos, klen, dpos, dlen)``
    for each record walked, for callers that check the data too.
    At most ``limit`` findings are kept; the rest are counted.
    """
    size = len(buf)
    report = Report(name, size)
    add = _Collector(report, limit)
    if size < 2048:
        add("short", f"the file is {size} bytes, shorter than the 2048-byte header", size)
        return report
    hash_ = _backend.current().hash
    unpack = _PAIR.unpack_from
    header = [unpack(buf, 8 * i) for i in range(256)]

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
    eod = min((pos for pos, _ in header if pos >= 2048), default=size)
    eod = min(eod, size)

    # -- the records, in file order ---------------------------------------
    starts: dict[int, bytes] = {}  # record position -> key
    counts = [0] * 256
    by_table: list[list[int]] = [[] for _ in range(256)]
    pos = 2048
    while pos < eod:
        if pos + 8 > eod:
            add("record", f"the record at {pos} runs into the hash tables at {eod}", pos)
            break
        klen, dlen = unpack(buf, pos)
        end = pos + 8 + klen + dlen
        if end > eod:
            add(
                "record",
                f"the record at {pos} ({klen}-byte key, {dlen}-byte data) runs "
                f"into the hash tables at {eod}",
                pos,
            )
            break
        key = bytes(buf[pos + 8 : pos + 8 + klen])
        starts[pos] = key
        t = hash_(key) & 255
        counts[t] += 1
        by_table[t].append(pos)
        if records is not None:
            records(pos, klen, pos + 8 + klen, dlen)
        pos = end
    report.records = len(starts)

    # -- table layout: after the records, no overlap, no bytes left over --
    spans = sorted(
        (pos, pos + 8 * slots, i) for i, (pos, slots) in enumerate(header) if tables_ok[i]
    )
    cursor = eod
    for start, end, i in spans:
        if start < eod:
            add(
                "layout",
                f"hash table {i} starts at {start}, inside the records (which end at {eod})",
                8 * i,
            )
        elif start > cursor:
            add(
                "leftover", f"bytes {cursor}..{start} belong to no record and no hash table", cursor
            )
        elif start < cursor and end > start:
            add("layout", f"hash table {i} ({start}..{end}) overlaps another table", start)
        cursor = max(cursor, end)
    if cursor < size and tables_ok.count(True) == 256:
        add(
            "leftover",
            f"bytes {cursor}..{size} at the end belong to no record and no hash table",
            cursor,
        )

    # -- every table: its slots and the records it must index -------------
    seen: dict[int, tuple[int, int]] = {}  # record position -> (table, slot)
    for t, (hpos, slots) in enumerate(header):
        if not tables_ok[t]:
            continue
        if slots != 2 * counts[t]:
            add(
                "slot-count",
                f"hash table {t} has {slots} slots for the {counts[t]} records "
                f"whose hash ends in byte {t}; cdbmake gives it {2 * counts[t]}",
                8 * t,
            )
        if not slots:
            continue
        empty = [False] * slots
        for s in range(slots):
            h, p = unpack(buf, hpos + 8 * s)
            where = hpos + 8 * s
            if not p:
                empty[s] = True
                if h:
                    add("slot", f"slot {s} of hash table {t} is empty but holds hash {h:#x}", where)
                continue
            found = starts.get(p)
            if found is None:
                add(
                    "slot",
                    f"slot {s} of hash table {t} points at {p}, which is not the start of a record",
                    where,
                )
                continue
            key = found
            real = hash_(key)
            if real != h:
                add(
                    "slot-hash",
                    f"slot {s} of hash table {t} holds hash {h:#x}, but the "
                    f"record at {p} (key {_show(key)}) hashes to {real:#x}",
                    where,
                    key,
                )
            elif h & 255 != t:
                add(
                    "slot-hash",
                    f"slot {s} of hash table {t} holds the record at {p} (key "
                    f"{_show(key)}), whose hash belongs in table {h & 255}",
                    where,
                    key,
                )
            if p in seen:
                add(
                    "duplicate-slot",
                    f"the record at {p} (key {_show(key)}) is referenced "
                    f"twice: slot {seen[p][1]} of table {seen[p][0]} and slot {s} of "
                    f"table {t}",
                    where,
                    key,
                )
            else:
                seen[p] = (t, s)
        if all(not e for e in empty):
            add(
                "full-table",
                f"hash table {t} ({slots} slots) has no empty slot; a lookup "
                "for an absent key never ends",
                hpos,
            )
        # Reachability: from a record's home slot, the walk must meet its
        # slot before any empty one.
        for p in by_table[t]:
            if p not in seen or seen[p][0] != t:
                continue
            s = seen[p][1]
            key = starts[p]
            home = (hash_(key) >> 8) % slots
            j = home
            while j != s:
                if empty[j]:
                    add(
                        "unreachable",
                        f"the record at {p} (key {_show(key)}) sits in slot {s} "
                        f"of hash table {t}, but the empty slot {j} lies between it and its "
                        f"home slot {home}: lookups never reach it",
                        p,
                        key,
                    )
                    break
                j = j + 1 if j + 1 < slots else 0

    # -- every record indexed, duplicates found in the order stored --------
    for p, key in starts.items():
        if p not in seen:
            add(
                "unindexed",
                f"the record at {p} (key {_show(key)}) is in no slot of its hash "
                f"table {hash_(key) & 255}: lookups never find it",
                p,
                key,
            )
    _check_duplicate_order(buf, header, starts, seen, add, hash_)
    return report


def _check_duplicate_order(
    buf: Any,
    header: list[tuple[int, int]],
    starts: dict[int, bytes],
    seen: dict[int, tuple[int, int]],
    add: _Collector,
    hash_: Callable[[bytes], int],
) -> None:
    """Records with the same key must come back from a lookup in the order
    they are stored (the first is "the" value)."""
    groups: dict[bytes, list[int]] = {}
    for p, key in starts.items():
        groups.setdefault(key, []).append(p)
    for key, positions in groups.items():
        if len(positions) < 2 or any(p not in seen for p in positions):
            continue
        t = hash_(key) & 255
        slots = header[t][1]
        if not slots:
            continue
        home = (hash_(key) >> 8) % slots
        # Walk order of each record: distance of its slot from the home slot.
        order = sorted(positions, key=lambda p: (seen[p][1] - home) % slots)
        if order != sorted(positions):
            add(
                "duplicate-order",
                f"the {len(positions)} records for key {_show(key)} come "
                "back from a lookup in a different order than they are stored, so the "
                "first value is not the first one added",
                order[0],
                key,
            )


def check(
    path: str | os.PathLike[str],
    limit: int = 1000,
    records: Callable[[int, int, int, int], None] | None = None,
) -> Report:
    """Validate the cdb file at ``path``; OSError when it cannot be read."""
    name = os.fsdecode(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            return check_bytes(b"", name, limit, records)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return check_bytes(buf, name, limit, records)
