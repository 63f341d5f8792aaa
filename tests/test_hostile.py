"""Hostile files, on each backend: truncated, corrupt and crafted cdbs
raise pycdb.CorruptError (with the offset of the problem), never a
crash, a hang, a huge allocation, or another exception.

(test_hostile_agree.py checks that both backends say exactly the same
thing about randomly corrupted files.)"""

from __future__ import annotations

import struct

import pytest
from corehelpers import HASH0_KEYS, foreign, keys_in_table, model_file, outcome, ref_hash
from hypothesis import given
from hypothesis import strategies as st

import pycdb

M = 0xFFFFFFFF


def header(data: bytes) -> list[tuple[int, int]]:
    words = struct.unpack_from("<512I", data)
    return [(words[2 * i], words[2 * i + 1]) for i in range(256)]


def put(data: bytes, offset: int, *words: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(f"<{len(words)}I", buf, offset, *words)
    return bytes(buf)


def open_(data: bytes) -> pycdb.Reader:
    return pycdb.Reader.from_bytes(data, name="h.cdb")


def corrupt(fn, match: str, offset: int | None = None) -> pycdb.CorruptError:
    with pytest.raises(pycdb.CorruptError, match=match) as info:
        fn()
    assert str(info.value).startswith("h.cdb: ")
    if offset is not None:
        assert info.value.offset == offset
    return info.value


# One record, b"a" -> b"1": its table has two slots, one of them empty.
ONE = model_file([(b"a", b"1")])
A_HASH = ref_hash(b"a")
A_TABLE = A_HASH & 255
A_TPOS = 2048 + 8 + 1 + 1
assert header(ONE)[A_TABLE] == (A_TPOS, 2)
A_SLOT = (A_HASH >> 8) % 2  # where the record's slot is
EMPTY_SLOT = 1 - A_SLOT
#: A key absent from ONE whose walk starts in a.'s table.
# Two bytes: no longer than a key ONE's record area could hold (10 bytes,
# 8 of them the lengths), so lookups walk its table; a longer key is
# absent without a look.
SAME_TABLE = next(k for k in keys_in_table(A_TABLE, 10, b"") if k != b"a")


def test_sound_one_record_file():
    r = open_(ONE)
    assert r[b"a"] == b"1" and r.get(SAME_TABLE) is None and len(r) == 1


# ---- the header, checked at open ---------------------------------------


def test_every_truncation_is_corrupt_at_open():
    data = model_file([(b"k%d" % i, b"v" * i) for i in range(30)])
    for size in range(len(data)):
        with pytest.raises(pycdb.CorruptError):
            open_(data[:size])
    assert len(open_(data)) == 30


def test_shorter_than_the_header():
    for size in (0, 1, 2047):
        corrupt(lambda size=size: open_(ONE[:size]), f"{size} bytes, shorter than", offset=size)


@pytest.mark.parametrize("entry", [0, 1, A_TABLE, 255])
@pytest.mark.parametrize("pos", [0, 8, 2040, 2047])
def test_table_inside_the_header(entry, pos):
    data = put(ONE, 8 * entry, pos)
    corrupt(lambda: open_(data), f"header entry {entry} .* inside the header", offset=8 * entry)


@pytest.mark.parametrize("entry", [0, A_TABLE, 255])
@pytest.mark.parametrize(
    "pos,slots",
    [
        (len(ONE) + 1, 0),  # an empty table past the end
        (len(ONE), 1),
        (A_TPOS, 3),  # one slot too many
        (M, 0),
        (M, M),
        (2048, 0x20000000),  # 8 * slots is 2**32: wraps to 0 in 32 bits
        (2048, 0x1FFFFFFF),
        (M - 7, 1),  # pos + 8 wraps to 0 in 32 bits
        (0x80000000, 0x10000000),
    ],
)
def test_table_past_the_end(entry, pos, slots):
    data = put(ONE, 8 * entry, pos, slots)
    corrupt(lambda: open_(data), f"header entry {entry} .* past the end of the file", 8 * entry)


def test_more_than_4_gib(tmp_path):
    """A file past 4 GiB cannot be a cdb (positions are 32-bit); it is
    refused at open without being read (the file is sparse)."""
    path = tmp_path / "big.cdb"
    with open(path, "wb") as f:
        f.write(ONE)
        f.truncate(2**32 + 1)
    with pytest.raises(pycdb.CorruptError, match="4 GiB"):
        pycdb.Reader(path)


# ---- hash tables, checked during lookups --------------------------------


def full_table(data: bytes = ONE, h: int = 0x12345678, pos: int = 2048) -> bytes:
    """ONE with its empty slot filled: a table with no empty slot."""
    return put(data, A_TPOS + 8 * EMPTY_SLOT, h, pos)


def test_table_without_empty_slot_raises_instead_of_missing():
    data = full_table()
    r = open_(data)
    e = corrupt(lambda: r.get(SAME_TABLE), f"hash table {A_TABLE} .* has no empty slot")
    assert e.offset == A_TPOS
    corrupt(lambda: SAME_TABLE in r, "has no empty slot")
    corrupt(lambda: r[SAME_TABLE], "has no empty slot")
    corrupt(lambda: r.get_all(SAME_TABLE), "has no empty slot")
    # get_all walks on past the match, round the whole table.
    corrupt(lambda: r.get_all(b"a"), "has no empty slot")
    # Other tables, and the records, are fine.
    assert r.get(b"b") is None
    assert list(r.items()) == [(b"a", b"1")]


def test_table_without_empty_slot_still_finds_what_comes_first():
    """get stops at the first match, as cdb_find does: only walks that
    would go round the table fail."""
    r = open_(full_table())
    assert r.get(b"a") == b"1"  # its slot is the first one probed
    assert b"a" in r


def test_big_full_table_is_bounded():
    """A table of 20000 slots, all full of other hashes: the walk stops
    after one round (no hang) and says so.  (No records: only the empty
    key fits, so it is the one looked up.)"""
    n = 20000
    base = model_file([])
    table = ref_hash(b"") & 255
    slots = b"".join(struct.pack("<II", (7 << 8) | table, 2048) for _ in range(n))
    data = bytearray(base + slots)
    for i in range(256):
        struct.pack_into("<II", data, 8 * i, 2048, 0)
    struct.pack_into("<II", data, 8 * table, 2048, n)
    corrupt(lambda: open_(bytes(data)).get(b""), f"hash table {table} .* no empty slot")


@pytest.mark.parametrize(
    "pos",
    [1, 8, 2047, A_TPOS - 7, A_TPOS - 1, A_TPOS, A_TPOS + 8, len(ONE), M - 7, M],
)
def test_slot_pointing_outside_the_records(pos):
    data = put(ONE, A_TPOS + 8 * A_SLOT, A_HASH, pos)
    r = open_(data)
    e = corrupt(lambda: r.get(b"a"), f"slot {A_SLOT} of hash table {A_TABLE} points at offset")
    assert e.offset == A_TPOS + 8 * A_SLOT
    corrupt(lambda: b"a" in r, "points at offset")
    corrupt(lambda: r.get_all(b"a"), "points at offset")
    # A slot whose hash does not match is never followed.
    assert r.get(SAME_TABLE) is None


def test_slot_with_another_hash_is_not_followed():
    data = put(ONE, A_TPOS + 8 * A_SLOT, A_HASH ^ 0x100, M)
    r = open_(data)
    assert r.get(b"a") is None
    assert r.get_all(b"a") == []


@pytest.mark.parametrize(
    "klen,dlen", [(M, 1), (1, M), (M, M), (2**31, 2**31), (1, 2), (2, 1), (1 << 16, 0)]
)
def test_record_lengths_running_past_the_records(klen, dlen):
    data = put(ONE, 2048, klen, dlen)
    r = open_(data)
    e = corrupt(lambda: r.get(b"a"), "the record at offset 2048 .* runs past the end of the rec")
    assert e.offset == 2048
    corrupt(lambda: r.get_all(b"a"), "runs past the end of the records")
    e = corrupt(lambda: list(r.items()), "the record at offset 2048 .* runs into the hash tables")
    assert e.offset == 2048
    corrupt(lambda: len(r), "runs into the hash tables", offset=2048)
    corrupt(lambda: list(r.keys()), "runs into the hash tables")
    corrupt(lambda: list(r.values()), "runs into the hash tables")
    corrupt(lambda: list(r), "runs into the hash tables")


def test_iteration_yields_records_before_the_bad_one():
    recs = [(b"k1", b"v1"), (b"k2", b"v2"), (b"k3", b"v3")]
    data = model_file(recs)
    third = 2048 + 2 * (8 + 4)
    data = put(data, third, 1000, 0)
    r = open_(data)
    it = r.items()
    assert next(it) == recs[0]
    assert next(it) == recs[1]
    corrupt(lambda: next(it), f"the record at offset {third}", offset=third)
    assert r.get(b"k1") == b"v1"


def test_records_running_into_the_tables():
    """The records end where the lowest table starts: a table moved down
    over the last record cuts it."""
    recs = [(b"k1", b"v1"), (b"k2", b"v2")]
    data = model_file(recs)
    h = header(data)
    low = 2048 + 12 + 6  # inside the second record
    entry = next(i for i, (_, slots) in enumerate(h) if slots == 0)
    data = put(data, 8 * entry, low, 0)
    r = open_(data)
    corrupt(lambda: list(r.items()), "the record at offset 2060 runs into the hash tables at 2066")
    corrupt(lambda: len(r), "runs into the hash tables")
    assert r.get(b"k1") == b"v1"
    corrupt(lambda: r.get(b"k2"), "points at offset 2060, outside the records .2048..2066.")


def test_a_record_header_cut_by_the_tables():
    data = model_file([(b"k", b"v")] * 2)
    h = header(data)
    entry = next(i for i, (_, slots) in enumerate(h) if slots == 0)
    data = put(data, 8 * entry, 2048 + 10 + 4, 0)  # 4 bytes into the second record
    corrupt(lambda: list(open_(data).items()), "the record at offset 2058 runs into", 2058)


def test_hash_zero_slot_with_position_zero_is_empty():
    """(0, 0) is the empty slot; a key with hash 0 stored as (0, pos) is
    found, and a zeroed position makes the slot empty again."""
    k = HASH0_KEYS[0]
    data = model_file([(k, b"zero")])
    table = header(data)[0]
    assert table[1] == 2
    r = open_(data)
    assert r[k] == b"zero"
    cleared = bytearray(data)
    cleared[table[0] : table[0] + 16] = bytes(16)
    assert open_(bytes(cleared)).get(k) is None


# ---- anything at all ---------------------------------------------------


@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.binary(min_size=2048, max_size=2300),
        st.builds(lambda tail: ONE[:2048] + tail, st.binary(max_size=200)),
    )
)
def test_arbitrary_bytes_never_raise_anything_but_corrupterror(data, backend):
    seen = outcome(backend, data, [b"a", b"", SAME_TABLE, HASH0_KEYS[0], data[2048:2050]])
    assert not foreign(seen), foreign(seen)
