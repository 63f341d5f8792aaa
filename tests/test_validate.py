"""Structural validation: every finding on a crafted file, soundness of
files the real tools write."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from corehelpers import model_file
from helpers import run_ref
from hypothesis import given
from hypothesis import strategies as st

import pycdb
from pycdb import validate


def build(tmp_path: Path, records: list[tuple[bytes, bytes]]) -> bytearray:
    path = tmp_path / "t.cdb"
    with pycdb.Writer(path) as w:
        for k, v in records:
            w.add(k, v)
    return bytearray(path.read_bytes())


RECORDS = [(b"key%d" % i, b"value%d" % i) for i in range(40)] + [(b"dup", b"1"), (b"dup", b"2")]


def header(buf: bytes | bytearray, i: int) -> tuple[int, int]:
    return struct.unpack_from("<II", buf, 8 * i)


def slots_of(buf: bytes | bytearray, t: int) -> list[tuple[int, int, int]]:
    """(slot offset, hash, pos) of every slot of table t."""
    pos, n = header(buf, t)
    return [(pos + 8 * s, *struct.unpack_from("<II", buf, pos + 8 * s)) for s in range(n)]


def a_table(buf: bytes | bytearray, records: int) -> int:
    """A table indexing exactly ``records`` records."""
    for t in range(256):
        if header(buf, t)[1] == 2 * records:
            return t
    raise AssertionError("no such table")


def codes(buf: bytes | bytearray) -> set[str]:
    return {f.code for f in validate.validate_bytes(bytes(buf)).findings}


def test_sound_file(tmp_path: Path) -> None:
    report = validate.validate_bytes(bytes(build(tmp_path, RECORDS)))
    assert report.sound and report.records == len(RECORDS) and report.findings == []


def test_empty_database_is_sound(tmp_path: Path) -> None:
    assert validate.validate_bytes(bytes(build(tmp_path, []))).sound


def test_truncated(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    for cut in (1, 8, len(buf) // 2, len(buf) - 2047):
        report = validate.validate_bytes(bytes(buf[:-cut]))
        assert not report.sound
        assert report.findings[0].code in {"header", "short"}


def test_short_file() -> None:
    report = validate.validate_bytes(b"\0" * 100)
    assert [f.code for f in report.findings] == ["short"]


def test_pointer_past_the_end(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    off, h, p = next(s for s in slots_of(buf, t) if s[2])
    struct.pack_into("<II", buf, off, h, len(buf) + 100)
    found = validate.validate_bytes(bytes(buf)).findings
    assert any(
        f.code == "slot" and f.offset == off and "not the start of a record" in f.message
        for f in found
    )
    assert "unindexed" in codes(buf)  # the record it used to reach is now lost


def test_header_past_the_end(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    struct.pack_into("<II", buf, 8 * 7, len(buf) - 8, 4)
    found = validate.validate_bytes(bytes(buf)).findings
    assert any(f.code == "header" and f.offset == 56 for f in found)


def test_table_without_empty_slot(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    (o1, h1, p1), (o2, h2, p2) = slots_of(buf, t)
    full = (o1, h1, p1) if p1 else (o2, h2, p2)
    empty_off = o2 if p1 else o1
    struct.pack_into("<II", buf, empty_off, full[1], full[2])
    assert {"full-table", "duplicate-slot"} <= codes(buf)
    # ... and the reader refuses to call a lookup there a miss.
    r = pycdb.Reader.from_bytes(bytes(buf))
    key = next(k for k, _ in RECORDS if pycdb.hash(k) & 255 == t)
    assert r.get(key) is not None
    absent = next(b"x%d" % i for i in range(10**6) if pycdb.hash(b"x%d" % i) & 255 == t)
    with pytest.raises(pycdb.CorruptError, match="no empty slot"):
        r.get(absent)


def test_slot_hash_disagrees(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    off, h, p = next(s for s in slots_of(buf, t) if s[2])
    struct.pack_into("<I", buf, off, h ^ 0x100)
    found = [f for f in validate.validate_bytes(bytes(buf)).findings if f.code == "slot-hash"]
    assert len(found) == 1 and found[0].offset == off and found[0].key is not None


def test_record_no_slot_reaches(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    off, h, p = next(s for s in slots_of(buf, t) if s[2])
    struct.pack_into("<II", buf, off, 0, 0)
    found = [f for f in validate.validate_bytes(bytes(buf)).findings if f.code == "unindexed"]
    assert len(found) == 1 and found[0].offset == p


def test_unreachable_behind_an_empty_slot(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    (o1, h1, p1), (o2, h2, p2) = slots_of(buf, t)
    # Swap the record into the other slot: whichever way round, its home
    # slot is now empty and the walk stops there.
    struct.pack_into("<IIII", buf, o1, h2, p2, h1, p1)
    assert "unreachable" in codes(buf)


def test_trailing_bytes(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS) + b"junk"
    found = validate.validate_bytes(bytes(buf)).findings
    assert [f.code for f in found] == ["leftover"]
    assert found[0].offset == len(buf) - 4


def test_slot_count_mismatch(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    pos, n = header(buf, t)
    struct.pack_into("<II", buf, 8 * t, pos, n - 1)
    assert "slot-count" in codes(buf)


def test_duplicates_out_of_order(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = pycdb.hash(b"dup") & 255
    dups = [s for s in slots_of(buf, t) if s[2] and s[1] == pycdb.hash(b"dup")]
    assert len(dups) == 2
    (o1, h1, p1), (o2, h2, p2) = dups
    struct.pack_into("<II", buf, o1, h2, p2)
    struct.pack_into("<II", buf, o2, h1, p1)
    assert "duplicate-order" in codes(buf)


def test_findings_are_capped() -> None:
    buf = bytearray(2048 + 8 * 1000)
    for i in range(256):
        struct.pack_into("<II", buf, 8 * i, 2048, 1000 if i == 0 else 0)
    for s in range(1000):
        struct.pack_into("<II", buf, 2048 + 8 * s, 1, 99)
    report = validate.validate_bytes(bytes(buf), limit=10)
    assert len(report.findings) == 10 and report.suppressed > 900 and not report.sound


@given(st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=60))
def test_cdbmake_files_are_sound(tmp_path: Path, records: list[tuple[bytes, bytes]]) -> None:
    text = b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v) for k, v in records) + b"\n"
    out = tmp_path / "ref.cdb"
    done = run_ref("cdbmake", str(out), str(tmp_path / "ref.tmp"), input=text)
    assert done.returncode == 0
    report = validate.validate(out)
    assert report.sound, report.findings
    assert report.canonical, report.layout_note
    assert report.records == len(records)


# ---- cdbmake's exact layout, the hooks, hostile layouts -----------------------------


def test_files_the_tools_write_are_canonical(tmp_path: Path) -> None:
    report = validate.validate_bytes(bytes(build(tmp_path, RECORDS)))
    assert report.canonical and report.layout_note == ""
    assert validate.validate_bytes(bytes(build(tmp_path, []))).canonical


def test_same_home_slot_swapped_is_sound_but_not_canonical(tmp_path: Path) -> None:
    """Two records with one home slot, stored the other way round: every
    lookup still works (no finding), but it is not cdbmake's layout."""
    seen: dict[tuple[int, int], bytes] = {}
    for i in range(10**6):
        key = b"k%d" % i
        h = pycdb.hash(key)
        where = (h & 255, (h >> 8) % 4)
        if where in seen:
            a, b = seen[where], key
            break
        seen[where] = key
    buf = build(tmp_path, [(a, b"1"), (b, b"2")])
    t = pycdb.hash(a) & 255
    slots = slots_of(buf, t)
    home = (pycdb.hash(a) >> 8) % 4
    nxt = (home + 1) % 4
    (oa, ha, pa), (ob, hb, pb) = slots[home], slots[nxt]
    struct.pack_into("<II", buf, oa, hb, pb)
    struct.pack_into("<II", buf, ob, ha, pa)
    report = validate.validate_bytes(bytes(buf))
    assert report.sound and not report.canonical
    assert report.layout_note == f"hash table {t} is not the one cdbmake builds from its records"


def test_tables_in_another_order(tmp_path: Path) -> None:
    """Two one-record tables trade places (header entries too): sound, not
    canonical, and the note names the first header entry that differs."""
    buf = build(tmp_path, RECORDS)
    t1, t2 = [t for t in range(256) if header(buf, t)[1] == 2][:2]
    (p1, n1), (p2, n2) = header(buf, t1), header(buf, t2)
    one, two = bytes(buf[p1 : p1 + 16]), bytes(buf[p2 : p2 + 16])
    buf[p1 : p1 + 16], buf[p2 : p2 + 16] = two, one
    struct.pack_into("<II", buf, 8 * t1, p2, n1)
    struct.pack_into("<II", buf, 8 * t2, p1, n2)
    report = validate.validate_bytes(bytes(buf))
    assert report.sound and not report.canonical
    assert report.layout_note.startswith(
        f"header entry {t1} is ({p2}, 2); cdbmake writes ({p1}, 2)"
    )


def test_slot_in_the_wrong_table(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t1, t2 = [t for t in range(256) if header(buf, t)[1] == 2][:2]
    (off, h, p) = next(s for s in slots_of(buf, t1) if s[2])
    empty = next(s for s in slots_of(buf, t2) if not s[2])
    struct.pack_into("<II", buf, empty[0], h, p)
    found = validate.validate_bytes(bytes(buf)).findings
    assert {(f.code, f.offset) for f in found} >= {
        ("slot-hash", empty[0]),
        ("duplicate-slot", empty[0]),
    }
    assert any(f"belongs in table {t1}" in f.message for f in found)


def test_empty_slot_with_a_hash(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    off = next(s for s in slots_of(buf, a_table(buf, 1)) if not s[2])[0]
    struct.pack_into("<I", buf, off, 12345)
    found = validate.validate_bytes(bytes(buf)).findings
    assert [(f.code, f.offset) for f in found] == [("slot", off)]


def test_overlapping_tables_are_bounded() -> None:
    """Every table spanning the same 256 KiB: each overlap is reported,
    and the work stays within twice the file's worth of slots (256 times
    would take minutes)."""
    slots = 32768
    buf = bytearray(2048 + 8 * slots)
    for i in range(256):
        struct.pack_into("<II", buf, 8 * i, 2048, slots)
    report = validate.validate_bytes(bytes(buf), limit=10_000)
    assert sum(f.code == "layout" for f in report.findings) == 255
    assert not report.sound and not report.canonical


def test_hooks_see_every_record_in_order(tmp_path: Path) -> None:
    buf = bytes(build(tmp_path, RECORDS))
    calls: list[tuple[int, int, int, int]] = []
    batches: list[validate.Batch] = []
    report = validate.validate_bytes(
        buf, records=lambda *a: calls.append(a), batches=batches.append
    )
    assert report.sound and len(calls) == len(RECORDS)
    keys = [
        buf[kpos : kpos + klen] for _, klen, kpos, _ in ((p, k, p + 8, d) for p, k, _, d in calls)
    ]
    assert keys == [k for k, _ in RECORDS]
    assert [buf[dpos : dpos + dlen] for _, _, dpos, dlen in calls] == [v for _, v in RECORDS]
    assert [k for b in batches for k in b.keys] == [k for k, _ in RECORDS]
    assert [d for b in batches for d in b.data()] == [v for _, v in RECORDS]


def test_buffer_types(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    for kind in (bytes, bytearray, memoryview):
        assert validate.validate_bytes(kind(buf)).sound  # type: ignore[operator]


def test_batches_across_the_boundary(tmp_path: Path) -> None:
    records = [(b"%d" % i, b"v") for i in range(validate.BATCH + 10)]
    buf = bytes(build(tmp_path, records))
    sizes: list[int] = []
    report = validate.validate_bytes(buf, batches=lambda b: sizes.append(len(b.keys)))
    assert report.sound and report.canonical and sizes == [validate.BATCH, 10]


def test_a_64_bit_cdb_is_named(tmp_path: Path) -> None:
    """python-pure-cdb's Writer64 files are no cdb to tcpserver: validate
    says what they are, and so does every reader's error."""
    data = model_file([(b"127.", b""), (b"", b"D\0")], wide=True)
    report = validate.validate_bytes(data, "x64.cdb")
    assert [(f.code, f.offset) for f in report.findings] == [("cdb64", 0)]
    assert "64-bit cdb (python-pure-cdb's Writer64 layout" in report.findings[0].message
    with pytest.raises(pycdb.CorruptError, match="a 64-bit cdb"):
        pycdb.Reader.from_bytes(data)
    # A 32-bit one is never taken for one.
    assert validate.validate_bytes(model_file([(b"127.", b"")]), "x").sound
