"""Structural validation: every finding on a crafted file, soundness of
files the real tools write."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
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
    return {f.code for f in validate.check_bytes(bytes(buf)).findings}


def test_sound_file(tmp_path: Path) -> None:
    report = validate.check_bytes(bytes(build(tmp_path, RECORDS)))
    assert report.sound and report.records == len(RECORDS) and report.findings == []


def test_empty_database_is_sound(tmp_path: Path) -> None:
    assert validate.check_bytes(bytes(build(tmp_path, []))).sound


def test_truncated(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    for cut in (1, 8, len(buf) // 2, len(buf) - 2047):
        report = validate.check_bytes(bytes(buf[:-cut]))
        assert not report.sound
        assert report.findings[0].code in {"header", "short"}


def test_short_file() -> None:
    report = validate.check_bytes(b"\0" * 100)
    assert [f.code for f in report.findings] == ["short"]


def test_pointer_past_the_end(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    off, h, p = next(s for s in slots_of(buf, t) if s[2])
    struct.pack_into("<II", buf, off, h, len(buf) + 100)
    found = validate.check_bytes(bytes(buf)).findings
    assert any(
        f.code == "slot" and f.offset == off and "not the start of a record" in f.message
        for f in found
    )
    assert "unindexed" in codes(buf)  # the record it used to reach is now lost


def test_header_past_the_end(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    struct.pack_into("<II", buf, 8 * 7, len(buf) - 8, 4)
    found = validate.check_bytes(bytes(buf)).findings
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
    found = [f for f in validate.check_bytes(bytes(buf)).findings if f.code == "slot-hash"]
    assert len(found) == 1 and found[0].offset == off and found[0].key is not None


def test_record_no_slot_reaches(tmp_path: Path) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    off, h, p = next(s for s in slots_of(buf, t) if s[2])
    struct.pack_into("<II", buf, off, 0, 0)
    found = [f for f in validate.check_bytes(bytes(buf)).findings if f.code == "unindexed"]
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
    found = validate.check_bytes(bytes(buf)).findings
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
    report = validate.check_bytes(bytes(buf), limit=10)
    assert len(report.findings) == 10 and report.suppressed > 900 and not report.sound


@given(st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=60))
def test_cdbmake_files_are_sound(tmp_path: Path, records: list[tuple[bytes, bytes]]) -> None:
    text = b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v) for k, v in records) + b"\n"
    out = tmp_path / "ref.cdb"
    done = run_ref("cdbmake", str(out), str(tmp_path / "ref.tmp"), input=text)
    assert done.returncode == 0
    report = validate.check(out)
    assert report.sound, report.findings
    assert report.records == len(records)
