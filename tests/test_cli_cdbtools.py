"""``pycdb cdbmake|dump|get|stats`` against freecdb's cdbmake, cdbdump, cdbget
and cdbstats: the same stdout bytes, the same exit code, the same message
after the ``fatal:`` prefix, on valid files and on corrupt ones.

The real programs read the cdb on standard input; they are run with the
file itself as stdin (cdbget and cdbstats mmap it), pycdb with its name.
pycdb runs in-process through ``pycdb.cli.main``, so both backends' hash
functions are exercised; a few tests run the installed console script.
"""

from __future__ import annotations

import errno
import io
import json
import os
import resource
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import FIXTURES, SLOW, child_env, ref, script
from hypothesis import given, settings
from hypothesis import strategies as st

from pycdb import cli
from pycdb._pure import hash as cdb_hash
from pycdb.cli import _util
from pycdb.cli import cdbmake as cdbmake_command
from pycdb.cli import freecdb as emulation
from pycdb.cli.cdbtools import TRUNCATED

MASK = 0xFFFFFFFF
GOLDEN = FIXTURES / "cdbtools"


# ---------------------------------------------------------------------------
# running both sides


@dataclass(frozen=True)
class Result:
    rc: int
    out: bytes
    err: str


def pycdb(*args: str | bytes, stdin: bytes = b"") -> Result:
    """``pycdb ARGS`` in-process, with bytes stdin and captured stdout."""
    argv = [os.fsdecode(a) for a in args]
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    sys.stdout, sys.stderr = out, err
    try:
        rc = cli.main(argv)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    out.flush()
    buffer = out.buffer
    assert isinstance(buffer, io.BytesIO)
    return Result(rc, buffer.getvalue(), err.getvalue())


def freecdb(program: str, *args: str | bytes, stdin_file: Path | None = None) -> Result:
    """A freecdb program with ``stdin_file`` as its standard input; its
    ``PROGRAM: fatal: `` prefix is rewritten to pycdb's."""
    fd = os.open(stdin_file if stdin_file else os.devnull, os.O_RDONLY)  # also a directory
    try:
        p = subprocess.run([ref(program), *args], stdin=fd, capture_output=True, timeout=120)
    finally:
        os.close(fd)
    err = p.stderr.decode("utf-8", "replace").replace(f"{program}: fatal: ", "pycdb: fatal: ")
    return Result(p.returncode, p.stdout, err)


TOOL = {"dump": "cdbdump", "stats": "cdbstats", "get": "cdbget"}


def compare(command: str, path: Path, *args: str | bytes) -> Result:
    """Run ``pycdb COMMAND PATH ARGS`` and the freecdb program on the same
    file; everything but the program name must agree."""
    ours = pycdb(command, str(path), *args)
    theirs = freecdb(TOOL[command], *args, stdin_file=path)
    assert (ours.rc, len(ours.out)) == (theirs.rc, len(theirs.out)), (command, args)
    assert ours.out == theirs.out, (command, args)
    assert ours.err == theirs.err, (command, args)
    return ours


def cdbmake_input(records: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v) for k, v in records) + b"\n"


def real_cdbmake(directory: Path, records: list[tuple[bytes, bytes]], name: str = "ref") -> Path:
    """A cdb made by freecdb's cdbmake."""
    out = directory / f"{name}.cdb"
    p = subprocess.run(
        [ref("cdbmake"), str(out), str(directory / f"{name}.tmp")],
        input=cdbmake_input(records),
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return out


# ---------------------------------------------------------------------------
# record sets


def colliding_family(state: int) -> list[bytes]:
    """Distinct 3-byte strings that all take the cdb hash from ``state`` to
    one value: for these (a, b), (h*33 ^ a)*33 ^ b times 33 agrees above
    the low byte, and the third byte evens out the low byte."""
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for a in range(256):
        ha = (state * 33 ^ a) & MASK
        for b in range(256):
            hb = (ha * 33 ^ b) & MASK
            groups.setdefault(((hb * 33) & MASK) >> 8, []).append((a, b, hb))
    best = max(groups.values(), key=len)
    low = ((best[0][2] * 33) & 0xFF) ^ 0x78
    return [bytes((a, b, ((hb * 33) & 0xFF) ^ low)) for a, b, hb in best]


def _colliding_keys() -> list[bytes]:
    keys = colliding_family(5381)
    assert len({cdb_hash(k) for k in keys}) == 1 and len(keys) >= 16
    return keys


COLLIDING = _colliding_keys()


def _fill(n: int, byte: int) -> bytes:
    return bytes([byte]) * n


keys = st.one_of(
    st.sampled_from([b"", b"a", b"b", b"\n", b"\x00", b"a\nb", b"->", b"+1,1:", b"\xff"]),
    st.binary(max_size=10),
    st.sampled_from(COLLIDING),
    st.builds(_fill, st.integers(1020, 1030), st.integers(0, 255)),  # around cdbstats' 1024
)
values = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"", b"\n", b"\n\n+1,1:a->b\n", b"\x00"]),
    st.builds(_fill, st.integers(0, 3000), st.integers(0, 255)),
)
record_lists = st.lists(st.tuples(keys, values), max_size=30)


def queryable(key: bytes) -> bool:
    """cdbget takes the key as an argument: non-empty, no NUL."""
    return bool(key) and b"\x00" not in key


# ---------------------------------------------------------------------------
# valid files


@given(records=record_lists)
def test_dump_stats_get_agree_with_freecdb_on_valid_files(tmp_path: Path, records) -> None:
    path = real_cdbmake(tmp_path, records)
    compare("dump", path)
    compare("stats", path)
    counts: dict[bytes, int] = {}
    for k, _ in records:
        counts[k] = counts.get(k, 0) + 1
    asked = [k for k in counts if queryable(k)][:4] + [b"no such key", COLLIDING[-1]]
    for key in asked:
        n = counts.get(key, 0)
        for skip in sorted({0, 1, n - 1, n} - {-1}):
            compare("get", path, key, str(skip))
    if asked:
        compare("get", path, asked[0])


@given(records=record_lists)
def test_cdbmake_output_is_byte_identical(tmp_path: Path, records) -> None:
    theirs = real_cdbmake(tmp_path, records)
    ours = tmp_path / "ours.cdb"
    result = pycdb("cdbmake", str(ours), str(tmp_path / "ours.tmp"), stdin=cdbmake_input(records))
    assert result == Result(0, b"", "")
    assert ours.read_bytes() == theirs.read_bytes()
    assert stat.S_IMODE(ours.stat().st_mode) == stat.S_IMODE(theirs.stat().st_mode)
    assert not (tmp_path / "ours.tmp").exists()


def test_cdbmake_mode_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        real = real_cdbmake(tmp_path, [(b"k", b"v")])
        made = pycdb("cdbmake", str(tmp_path / "o.cdb"), str(tmp_path / "o.tmp"), stdin=b"\n")
        assert made.rc == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "o.cdb").stat().st_mode) == stat.S_IMODE(real.stat().st_mode)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_duplicates_and_collisions_stats(tmp_path: Path) -> None:
    """Long probe chains: 600 copies of one key and every colliding key
    several times (cdbstats' >9 bucket), and keys around its 1024-byte
    limit."""
    records = [(b"dup", b"%d" % i) for i in range(600)]
    records += [(k, b"c") for k in COLLIDING * 3]
    records += [(b"x" * n, b"long") for n in (1023, 1024, 1025, 5000)]
    path = real_cdbmake(tmp_path, records)
    assert b">9" in compare("stats", path).out
    compare("dump", path)
    for skip in ("0", "1", "599", "600", "18446744073709551615", "18446744073709551616"):
        compare("get", path, b"dup", skip)
    compare("get", path, [k for k in COLLIDING if queryable(k)][5], "2")
    compare("get", path, b"x" * 1025)


def test_many_distinct_keys_with_one_hash(tmp_path: Path) -> None:
    """4096 distinct keys with one hash, as cdbmake writes them: one cluster
    of 4096 slots, so cdbstats probes 8 million slots.  pycdb answers the
    same, through its table index rather than probe by probe."""
    first = COLLIDING
    second = colliding_family(cdb_hash(first[0]))
    keys = [a + b for a in first for b in second]
    assert len(keys) >= 2048 and len({cdb_hash(k) for k in keys}) == 1
    asked = [k for k in keys if queryable(k)]
    records = [(k, b"") for k in keys] + [(asked[7], b"again")] * 50
    path = real_cdbmake(tmp_path, records)
    assert b">9" in compare("stats", path).out
    for key in asked[-3:] + asked[7:8]:
        compare("get", path, key, "1")


# ---------------------------------------------------------------------------
# corrupt files


def layout(buf: bytes) -> dict[str, list[int]]:
    """Offsets worth corrupting in a valid cdb: record starts, key and data
    starts, header words of used tables, and every slot's words."""
    eod = struct.unpack_from("<I", buf, 0)[0]
    records, keys_at, data_at = [], [], []
    off = 2048
    while off < eod:
        klen, dlen = struct.unpack_from("<II", buf, off)
        records.append(off)
        keys_at.append(off + 8)
        data_at.append(off + 8 + klen)
        off += 8 + klen + dlen
    header, slots = [], []
    for i in range(256):
        pos, n = struct.unpack_from("<II", buf, 8 * i)
        if n:
            header += [8 * i, 8 * i + 4]
            slots += [pos + 8 * j + w for j in range(n) for w in (0, 4)]
    return {"records": records, "keys": keys_at, "data": data_at, "header": header, "slots": slots}


@st.composite
def corruptions(draw: st.DrawFn, buf: bytes) -> bytes:
    """1 to 3 corruptions of the valid file ``buf``."""
    data = bytearray(buf)
    where = layout(buf)
    size = len(buf)
    eod = struct.unpack_from("<I", buf, 0)[0]
    words = [0, 1, 7, 8, 2047, 2048, 2056, eod, eod - 1, size - 8, size - 1, size, size + 1]
    words += [0x7FFFFFFF, 0x80000000, 0xFFFFFFF8, 0xFFFFFFFF, 1024, 1025, 20000]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "word", "byte", "fill", "copy-slot"]))
        if kind == "truncate":
            points = [0, 1, 4, 2047, 2048, eod, len(data) - 1]
            for name in ("records", "keys", "data"):
                points += where[name]
            base = draw(st.sampled_from(points) | st.integers(0, len(data)))
            cut = min(max(base + draw(st.integers(-9, 9)), 0), len(data))
            del data[cut:]
        elif kind == "word":
            fields = where["header"] + where["slots"] + [0]
            fields += where["records"] + [r + 4 for r in where["records"]]
            off = draw(st.sampled_from(fields) | st.integers(0, max(len(data) - 4, 0)))
            if off + 4 > len(data):
                continue
            old = struct.unpack_from("<I", data, off)[0]
            value = draw(
                st.sampled_from(words)
                | st.integers(0, MASK)
                | st.integers(-16, 16).map(lambda d, old=old: (old + d) & MASK)
            )
            struct.pack_into("<I", data, off, value & MASK)
        elif kind == "byte" and data:
            off = draw(st.integers(0, len(data) - 1))
            data[off] ^= draw(st.integers(1, 255))
        elif kind in ("fill", "copy-slot") and where["slots"]:
            # Tables with no empty slot, or slots that point elsewhere.
            pairs = [s for s in where["slots"] if s % 8 == where["slots"][0] % 8]
            src = draw(st.sampled_from(pairs))
            targets = pairs if kind == "fill" else [draw(st.sampled_from(pairs))]
            for dst in targets:
                if max(dst, src) + 8 > len(data):
                    continue
                if kind == "copy-slot" or struct.unpack_from("<I", data, dst + 4)[0] == 0:
                    data[dst : dst + 8] = data[src : src + 8]
    return bytes(data)


#: Enough data that dump output passes djb's 8192-byte buffer several
#: times before most corruption points, and a value big enough that a
#: corrupt length makes cdbget die after flushing part of it.
BULK = [(b"bulk%d" % i, bytes([65 + i]) * 1500) for i in range(12)] + [(b"big", b"B" * 20000)]


@given(records=st.lists(st.tuples(keys, values), max_size=8), data=st.data())
def test_corrupt_files_agree_with_freecdb(tmp_path: Path, records, data) -> None:
    ordered = data.draw(st.permutations(records + BULK))
    good = real_cdbmake(tmp_path, ordered).read_bytes()
    bad = data.draw(corruptions(good))
    path = tmp_path / "bad.cdb"
    path.write_bytes(bad)
    compare("dump", path)
    compare("stats", path)
    asked = [k for k, _ in ordered if queryable(k)]
    for key in [b"big", data.draw(st.sampled_from(asked)), b"absent"]:
        compare("get", path, key)
        compare("get", path, key, "1")


@given(records=st.lists(st.tuples(keys, values), max_size=40), data=st.data())
def test_stats_table_index_agrees_with_freecdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records, data
) -> None:
    """cdbstats' answers through the table index alone (no direct walk,
    index built at the first lookup in a table), on corrupt files."""
    force_index(monkeypatch)
    ordered = data.draw(st.permutations(records + [(k, b"c") for k in COLLIDING[:20]]))
    good = real_cdbmake(tmp_path, ordered).read_bytes()
    path = tmp_path / "bad.cdb"
    path.write_bytes(data.draw(corruptions(good)) if data.draw(st.booleans()) else good)
    compare("stats", path)


def put_record(buf: bytearray, key: bytes, value: bytes) -> int:
    pos = len(buf)
    buf += struct.pack("<II", len(key), len(value)) + key + value
    return pos


def test_get_dies_after_flushing_whole_buffers(tmp_path: Path) -> None:
    """A data length past the end of the file: cdbget has printed the
    1024-byte pieces that fit, of which only whole 8192-byte buffers
    reached stdout."""
    good = real_cdbmake(tmp_path, [(b"a", b"x" * 30000), (b"b", b"y" * 9000)]).read_bytes()
    for extra in (1, 1024, 5000, 30000, MASK - 30000):
        bad = bytearray(good)
        struct.pack_into("<I", bad, 2048 + 4, 30000 + extra)
        path = tmp_path / "bad.cdb"
        path.write_bytes(bytes(bad))
        for cut in (len(bad), 2048 + 9 + 8193, 2048 + 9 + 16384, 2048 + 9 + 16383):
            path.write_bytes(bytes(bad[:cut]))
            compare("get", path, b"a")
            compare("dump", path)


def test_dump_truncated_mid_key_prints_whole_pieces(tmp_path: Path) -> None:
    good = real_cdbmake(tmp_path, [(b"k" * 5000, b"v" * 5000)] * 3).read_bytes()
    path = tmp_path / "bad.cdb"
    for cut in range(2048, 2048 + 3 * 10008, 997):
        path.write_bytes(good[:cut])
        assert compare("dump", path).rc == 111
        compare("stats", path)


def crafted(tables: dict[int, tuple[int, int]], eod: int, body: bytes) -> bytes:
    """A file from a hand-made header and body (the body starts at 2048)."""
    head = bytearray(2048)
    for i in range(256):
        struct.pack_into("<II", head, 8 * i, *tables.get(i, (eod, 0)))
    struct.pack_into("<I", head, 0, tables.get(0, (eod, 0))[0])
    return bytes(head) + body


def force_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make cdbstats answer through its table index wherever it can."""
    monkeypatch.setattr(emulation, "_INDEX_AFTER", -(10**9))
    monkeypatch.setattr(emulation, "_quick_loop", lambda *args: 0)


@pytest.mark.parametrize("index", [False, True], ids=["walk", "index"])
def test_crafted_lookups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: bool) -> None:
    """What freecdb tolerates and pycdb.Reader would not: records inside the
    header, tables overlapping records, positions that wrap, no empty
    slot, a key that runs past the end of the file."""
    if index:
        force_index(monkeypatch)
    key = b"key"
    h = cdb_hash(key)
    t = h & 255
    body = bytearray()
    rec = 2048 + put_record(body, key, b"value")
    eod = 2048 + len(body)
    cases = {
        "full table": [(h, rec), (h ^ 1, rec)],
        "pointer past end": [(h, 1 << 31)],
        "pointer into header": [(h, 8 * t)],
        "pointer near the top": [(h, MASK - 3)],
        "no match, no empty": [(h ^ 1, rec)] * 3,
        "key past end": [(h, eod + 16 - 11)],
    }
    for slots in cases.values():
        table = bytearray()
        for sh, sp in slots:
            table += struct.pack("<II", sh, sp)
        tpos = eod
        data = crafted({t: (tpos, len(slots))}, eod, bytes(body) + bytes(table))
        path = tmp_path / "c.cdb"
        path.write_bytes(data)
        for skip in ("0", "1", "2", "5"):
            compare("get", path, key, skip)
        compare("stats", path)
        compare("dump", path)
    # hslots so large that the table runs off the file, and slots that
    # start before the table.
    for hpos, hslots in [(eod, MASK), (eod, 1 << 28), (0, 300), (2048, 2), (MASK - 7, 3)]:
        path.write_bytes(crafted({t: (hpos, hslots)}, eod, bytes(body) + bytes(16)))
        compare("get", path, key)
        compare("stats", path)


# Keys whose hash is 5, 261 and 517: all three go to table 5 and start at
# slots 0, 1 and 2, whatever the table's size; the fourth (1285) starts at
# slot 5.  (Found by meeting in the middle over the invertible step
# h -> h*33 ^ c; checked below.)
SMALL_HASH_KEYS = [b"vpbzftl", b"vpbzflt", b"epjexwu", b"vpbzglu"]


def cyclic_cdb(extra_record: bool = False) -> bytes:
    """Table 5 claims 2**29 + 3 slots: 8 * hslots wraps to 24, so a walk
    that starts in slots 0-2 cycles over three full slots for half a
    billion probes.  Four more slots follow the cycle; a walk that starts
    there runs off the end of the file instead."""
    assert [cdb_hash(k) for k in SMALL_HASH_KEYS] == [5, 261, 517, 1285]
    body = bytearray()
    poss = [2048 + put_record(body, k, b"v%d" % i) for i, k in enumerate(SMALL_HASH_KEYS)]
    if extra_record:
        put_record(body, SMALL_HASH_KEYS[0], b"unreachable")
    eod = 2048 + len(body)
    slots = [(cdb_hash(k), p) for k, p in zip(SMALL_HASH_KEYS[:3], poss)]
    slots += [(0xDEAD0005, poss[0])] * 2 + [(1285, poss[3]), (0xDEAD0005, poss[0])]
    table = b"".join(struct.pack("<II", h, p) for h, p in slots)
    return crafted({5: (eod, (1 << 29) + 3)}, eod, bytes(body) + table)


#: (command, with the unreachable record, arguments, slow in freecdb)
CYCLE_CASES: list[tuple[str, bool, tuple[str, ...], bool]] = [
    ("get", False, ("vpbzftl",), False),
    ("get", False, ("vpbzftl", "1"), False),
    ("get", False, ("epjexwu", "7"), False),
    ("get", False, ("vpbzfta",), False),
    ("get", False, ("vpbzglu",), False),
    ("get", False, ("vpbzglu", "1"), False),
    ("stats", False, (), False),
    ("get", False, ("epjexwu", "100000000"), True),
    ("get", False, ("epjexwu", "200000000"), True),
    ("stats", True, (), True),
]


def _golden() -> dict[str, dict[str, object]]:
    return json.loads((GOLDEN / "cycle.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CYCLE_CASES, ids=lambda c: f"{c[0]}-{int(c[1])}-{'-'.join(c[2])}")
def test_cyclic_table(tmp_path: Path, case: tuple[str, bool, tuple[str, ...], bool]) -> None:
    """The periodic walk is computed, not probed: same answers as freecdb
    (recorded in tests/fixtures/cdbtools/cycle.json by make_fixtures.py;
    the quick cases are also re-run live, the slow ones with PYCDB_SLOW=1)."""
    command, extra, args, slow = case
    path = tmp_path / "cycle.cdb"
    path.write_bytes(cyclic_cdb(extra))
    ours = pycdb(command, str(path), *args)
    want = _golden()[f"{command} {int(extra)} {' '.join(args)}"]
    assert (ours.rc, ours.out.hex(), ours.err) == (want["rc"], want["out"], want["err"])
    if SLOW or not slow:
        compare(command, path, *args)


@pytest.mark.parametrize("index", [False, True], ids=["walk", "index"])
def test_key_running_past_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: bool
) -> None:
    """match() compares 32-byte pieces, each read checked on its own: a
    record whose key runs past the end of the file is a miss when an
    earlier piece differs, a read error when all that is there matches."""
    if index:
        force_index(monkeypatch)
    key = b"K" * 40
    h = cdb_hash(key)
    t = h & 255
    body = bytearray()
    rec = 2048 + put_record(body, key, b"found")
    eod = 2048 + len(body)
    for tail_key in (key[:35], key[:20], b"X" * 35, key[:31] + b"X" * 4, key[:32], b""):
        tail = struct.pack("<II", 40, 5) + tail_key
        table_pos = eod
        tail_pos = eod + 16
        table = struct.pack("<IIII", h, tail_pos, h, rec)
        path = tmp_path / "c.cdb"
        path.write_bytes(crafted({t: (table_pos, 2)}, eod, bytes(body) + table + tail))
        compare("get", path, key)
        compare("get", path, key, "1")
        compare("stats", path)


@pytest.mark.parametrize("index", [False, True], ids=["walk", "index"])
def test_table_running_off_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: bool
) -> None:
    """A table that claims more slots than the file holds: the walk goes
    straight on (its end is never reached) until an empty slot, the
    record, or a read past the end of the file."""
    if index:
        force_index(monkeypatch)
    keys = [SMALL_HASH_KEYS[0], SMALL_HASH_KEYS[3]]  # start at slots 0 and 5
    body = bytearray()
    poss = [2048 + put_record(body, k, b"v") for k in keys]
    eod = 2048 + len(body)
    other = (0xDEAD0005, poss[0])
    layouts = [
        [other] * 7,
        [other, other, other, (5, poss[0]), other, other, other],
        [other, other, (0, 0), (5, poss[0]), other, (1285, poss[1]), other],
        [other] * 6 + [(1285, poss[1])],
        [other] * 3,
    ]
    for slots in layouts:
        table = b"".join(struct.pack("<II", h, p) for h, p in slots)
        path = tmp_path / "c.cdb"
        for hslots in (100, 1 << 28):
            path.write_bytes(crafted({5: (eod, hslots)}, eod, bytes(body) + table))
            compare("stats", path)
            for key in keys:
                compare("get", path, key)


# ---------------------------------------------------------------------------
# cdbmake: every error path of cdbmake.c

BAD_INPUTS = [
    b"",
    b"x",
    b"+",
    b"+1",
    b"+1,",
    b"+a",
    b"+1,a",
    b"+1,1",
    b"+1,1:",
    b"+1,1:a",
    b"+1,1:a-",
    b"+1,1:a->",
    b"+1,1:a->b",
    b"+1,1:a->b\n",
    b"+1,1:a-b",
    b"+1,1:ab",
    b"+1,1:a->bc",
    b"+1,1:a->b\n+",
    b"+1,1:a->b\n\r\n",
    b"+1,1:a->b\n+1,1:a->b\r\n\n",
    b"+4294967209,0:",
    b"+4294967210,0:",
    b"+429496721,0:",
    b"+4294967295",
    b"+42949672090,",
    b"+0,4294967209:",
    b"+0,4294967210:",
    b"+0,429496721x",
    b"+00000000000000000001,0:a->\n\n",
    b"+-1,0:",
    b"+ 1,0:",
    b"+1 ,0:",
    b"+1,1:\n->\n",
    b"\n",
    b"\ntrailing garbage is never read",
    b"+,:->\n\n",
    b"+0,0:->\n+0,0:->\n\n",
]


def check_cdbmake(tmp_path: Path, text: bytes) -> Result:
    """pycdb cdbmake and cdbmake on the same input: same exit code and
    message, OUT replaced only on success, and pycdb leaves no TMP."""
    out = {}
    for who in ("ref", "ours"):
        d = tmp_path / who
        d.mkdir(exist_ok=True)
        (d / "out.cdb").write_bytes(b"old contents")
        (d / "out.tmp").unlink(missing_ok=True)
    p = subprocess.run(
        [ref("cdbmake"), "out.cdb", "out.tmp"],
        input=text,
        capture_output=True,
        cwd=tmp_path / "ref",
        timeout=60,
    )
    theirs = Result(p.returncode, p.stdout, p.stderr.decode().replace("cdbmake:", "pycdb:"))
    ours_dir = tmp_path / "ours"
    ours = pycdb("cdbmake", str(ours_dir / "out.cdb"), str(ours_dir / "out.tmp"), stdin=text)
    ours = Result(ours.rc, ours.out, ours.err.replace(str(ours_dir) + "/", ""))
    # Where cdbmake's 32-bit arithmetic overflows, it says "out of memory";
    # pycdb fails at the same point, exit 111, naming the format's limit.
    limit = "the cdb format's 4 GiB limit (every position must fit in 32 bits)\n"
    if ours.err.endswith(limit) and theirs.err.endswith(": out of memory\n"):
        prefix = theirs.err[: -len("out of memory\n")]
        assert ours.err.startswith(prefix)
        ours = Result(ours.rc, ours.out, theirs.err)
    assert ours == theirs, text[:200]
    out = {who: (tmp_path / who / "out.cdb").read_bytes() for who in ("ref", "ours")}
    assert out["ours"] == out["ref"]
    if ours.rc:
        assert out["ours"] == b"old contents"
    assert not (ours_dir / "out.tmp").exists()
    return ours


@pytest.mark.parametrize("text", BAD_INPUTS)
def test_cdbmake_errors_match(tmp_path: Path, text: bytes) -> None:
    check_cdbmake(tmp_path, text)


@given(
    records=st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=6)), max_size=6),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["cut", "set", "insert", "delete"]),
            st.integers(0, 200),
            st.sampled_from(b"+,:->\n\r09x \x00"),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_cdbmake_malformed_input_matches(tmp_path: Path, records, edits) -> None:
    text = bytearray(cdbmake_input(records))
    for kind, at, byte in edits:
        at = at % (len(text) + 1)
        if kind == "cut":
            del text[at:]
        elif kind == "insert":
            text[at:at] = bytes([byte])
        elif at < len(text):
            if kind == "set":
                text[at] = byte
            else:
                del text[at]
    check_cdbmake(tmp_path, bytes(text))


def test_cdbmake_cannot_create_tmp(tmp_path: Path) -> None:
    r = pycdb("cdbmake", str(tmp_path / "o.cdb"), str(tmp_path / "no" / "o.tmp"), stdin=b"\n")
    assert r == Result(
        111, b"", f"pycdb: fatal: unable to create {tmp_path}/no/o.tmp: file does not exist\n"
    )


def test_cdbmake_cannot_rename(tmp_path: Path) -> None:
    (tmp_path / "dir.cdb").mkdir()
    (tmp_path / "dir.cdb" / "x").write_bytes(b"")
    text = b"+1,1:a->b\n\n"
    ours = pycdb("cdbmake", str(tmp_path / "dir.cdb"), str(tmp_path / "o.tmp"), stdin=text)
    p = subprocess.run(
        [ref("cdbmake"), "dir.cdb", "r.tmp"], input=text, capture_output=True, cwd=tmp_path
    )
    assert ours.rc == p.returncode == 111
    assert ours.err.replace(f"{tmp_path}/", "").replace("o.tmp", "r.tmp") == (
        p.stderr.decode().replace("cdbmake:", "pycdb:")
    )
    assert not (tmp_path / "o.tmp").exists()


class Unreadable(io.RawIOBase):
    """Standard input whose read() fails (a directory, an I/O error)."""

    def __init__(self, error: int, good: bytes = b"") -> None:
        self._good = io.BytesIO(good)
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = self._good.readinto(b)
        if n:
            return n
        raise OSError(self._error, os.strerror(self._error))


def test_cdbmake_unreadable_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read error is cdbmake's entry-numbered message.  (CPython refuses
    to start with a directory as stdin, so pycdb is run in-process with a
    failing stream; freecdb with the real directory.)"""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        p = subprocess.run(
            [ref("cdbmake"), "r.cdb", "r.tmp"], stdin=fd, capture_output=True, cwd=tmp_path
        )
    finally:
        os.close(fd)
    for error, good, entry in [(errno.EISDIR, b"", 1), (errno.EIO, b"+1,1:a->b\n+0,", 2)]:
        stdin = io.TextIOWrapper(io.BufferedReader(Unreadable(error, good)))
        monkeypatch.setattr(sys, "stdin", stdin)
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        assert cli.main(["cdbmake", str(tmp_path / "o.cdb"), str(tmp_path / "o.tmp")]) == 111
        text = "is a directory" if error == errno.EISDIR else "input/output error"
        assert err.getvalue() == f"pycdb: fatal: unable to read input: entry {entry}: {text}\n"
        assert not (tmp_path / "o.tmp").exists() and not (tmp_path / "o.cdb").exists()
    assert p.returncode == 111
    assert p.stderr == b"cdbmake: fatal: unable to read input: entry 1: is a directory\n"


def test_cdbmake_overflow_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cdbmake's 32-bit overflow checks, scaled down: a record that takes
    the position past the limit fails at once; when only the hash tables
    would not fit, the writer refuses early but cdbmake notices at the end,
    so an input error after that point still wins."""
    monkeypatch.setattr(cdbmake_command, "_LIMIT", 2048 + 100)
    monkeypatch.setattr("pycdb.writer.Writer._limit", 2048 + 100)
    out, tmp = str(tmp_path / "o.cdb"), str(tmp_path / "o.tmp")
    past = "the cdb format's 4 GiB limit (every position must fit in 32 bits)\n"
    # 2048 + 8 + 1 + 80 = 2137: the record fits, its two slots do not.
    fits = b"+1,80:a->" + b"x" * 80 + b"\n"
    assert pycdb("cdbmake", out, tmp, stdin=fits + b"\n") == Result(
        111,
        b"",
        f"pycdb: fatal: unable to create {tmp}: the hash tables of these 1 records would "
        f"take the file past {past}",
    )
    assert pycdb("cdbmake", out, tmp, stdin=b"+1,92:a->" + b"x" * 92) == Result(
        111,
        b"",
        f"pycdb: fatal: unable to create {tmp}: entry 1: a record with a 1-byte key and a "
        f"92-byte value would take the file past {past}",
    )
    assert pycdb("cdbmake", out, tmp, stdin=fits + b"x") == Result(
        111, b"", "pycdb: fatal: unable to read input: entry 2: entry must start with +\n"
    )
    # 2048 + 84 + 16 = 2148 exactly: accepted.
    assert pycdb("cdbmake", out, tmp, stdin=b"+1,75:a->" + b"x" * 75 + b"\n\n").rc == 0
    assert not os.path.exists(tmp)


class Trickle(io.RawIOBase):
    """An endless-looking input that records how much it was asked for."""

    def __init__(self, records: int) -> None:
        self._data = io.BytesIO(cdbmake_input([(b"key%d" % i, b"v" * 50) for i in range(records)]))
        self.asked: list[int] = []

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        self.asked.append(len(b))
        return self._data.readinto(b)


def test_cdbmake_streams_its_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records go to the writer as they are read; the input is never read
    whole (a 1 GB input needs no 1 GB of memory)."""
    raw = Trickle(20000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(raw, 4096)))
    out = tmp_path / "o.cdb"
    assert cli.main(["cdbmake", str(out), str(tmp_path / "o.tmp")]) == 0
    assert max(raw.asked) <= 1 << 16 and len(raw.asked) > 20
    ref_path = real_cdbmake(tmp_path, [(b"key%d" % i, b"v" * 50) for i in range(20000)])
    assert out.read_bytes() == ref_path.read_bytes()


def test_cdbmake_huge_claimed_length_is_not_allocated(tmp_path: Path) -> None:
    text = b"+0,4000000000:->" + b"x" * 1000
    check_cdbmake(tmp_path, text)


# ---------------------------------------------------------------------------
# arguments


SKIPS = [
    "",
    "0",
    "007",
    "1",
    "2",
    "1x",
    " 1",
    "+1",
    "-1",
    "0x1",
    "١",  # an Arabic-Indic digit is not a digit to scan_ulong
    "18446744073709551615",
    "18446744073709551616",
    "18446744073709551617",
    "36893488147419103231",
    "9" * 100,
    "1" * 5000,
]


@pytest.mark.parametrize("skip", SKIPS)
def test_get_skip_is_scan_ulong(tmp_path: Path, skip: str) -> None:
    path = real_cdbmake(tmp_path, [(b"a", b"1"), (b"a", b"2"), (b"a", b"3")])
    ours = pycdb("get", str(path), "a", skip)
    theirs = freecdb("cdbget", "a", skip, stdin_file=path)
    assert (ours.rc, ours.out) == (theirs.rc, theirs.out)
    # A usage error on one side is a usage error on the other.
    assert bool(ours.err) == bool(theirs.err)
    assert ours.err in ("", "pycdb: fatal: usage: pycdb get FILE KEY [SKIP]\n")


@pytest.mark.parametrize(
    "args",
    [
        ["get"],
        ["get", "F"],
        ["get", "F", ""],
        ["get", "F", "a", "1", "2"],
        ["get", "F", "a", "z"],
        ["dump"],
        ["dump", "F", "G"],
        ["stats"],
        ["stats", "F", "G"],
        ["cdbmake"],
        ["cdbmake", "a"],
        ["cdbmake", "a", ""],
        ["cdbmake", "", "b"],
        ["cdbmake", "a", "b", "c"],
    ],
)
def test_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """Exit 100 and the usage line, before any file is opened or created."""
    monkeypatch.chdir(tmp_path)
    ours = pycdb(*args, stdin=b"\n")
    want = {
        "get": "pycdb get FILE KEY [SKIP]",
        "dump": "pycdb dump FILE",
        "stats": "pycdb stats FILE",
        "cdbmake": "pycdb cdbmake OUT TMP",
    }[args[0]]
    assert ours == Result(100, b"", f"pycdb: fatal: usage: {want}\n")
    assert os.listdir(tmp_path) == []
    tool = {"get": "cdbget", "dump": "cdbdump", "stats": "cdbstats", "cdbmake": "cdbmake"}[args[0]]
    # The same mistake made to the freecdb program is a usage error too.
    theirs = args[1:] if args[0] == "cdbmake" else args[2:]
    if args[0] != "cdbmake" and len(args) < 2:
        return
    p = subprocess.run([ref(tool), *theirs], input=b"\n", capture_output=True, cwd=tmp_path)
    assert p.returncode == 100


@pytest.mark.parametrize("command", ["dump", "stats", "get", "cdbmake"])
def test_help(command: str) -> None:
    r = pycdb(command, "--help")
    assert r.rc == 0 and r.out.startswith(b"usage: pycdb " + command.encode())


@pytest.mark.parametrize("command", ["dump", "stats", "get"])
def test_missing_and_unreadable_files(tmp_path: Path, command: str) -> None:
    extra = ["k"] if command == "get" else []
    missing = tmp_path / "missing.cdb"
    r = pycdb(command, str(missing), *extra)
    assert r == Result(111, b"", f"pycdb: fatal: unable to open {missing}: file does not exist\n")
    r = pycdb(command, str(tmp_path), *extra)
    assert r == Result(111, b"", "pycdb: fatal: unable to read input: is a directory\n")
    if command != "get":  # Debian's cdbget crashes (SIGSEGV) on a directory
        assert freecdb(TOOL[command], stdin_file=tmp_path) == r
    empty = tmp_path / "empty.cdb"
    empty.write_bytes(b"")
    compare(command, empty, *extra)
    if os.geteuid() != 0:
        secret = tmp_path / "secret.cdb"
        secret.write_bytes(b"")
        secret.chmod(0)
        r = pycdb(command, str(secret), *extra)
        assert r == Result(111, b"", f"pycdb: fatal: unable to open {secret}: access denied\n")


def outside(
    args: list[str], backend: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``pycdb ARGS`` in a child process, with the backend under test, a
    timeout (a command that waits fails its test instead of hanging the
    suite) and a 1 GiB address-space cap (one that reads ``/dev/zero`` on
    and on dies instead of taking the machine's memory)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [script("pycdb"), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        env=child_env(backend=backend),
        preexec_fn=cap,
    )


@pytest.mark.parametrize("command", ["dump", "stats", "get"])
def test_fifo_and_device_are_never_waited_on(tmp_path: Path, backend: str, command: str) -> None:
    """A FIFO is opened without blocking: dump reads it (one no one writes
    to is empty: truncated, as cdbdump < /dev/null says), get and stats,
    which map the file, refuse it at once.  A device is refused by all
    three, never read (/dev/zero has no end)."""
    extra = ["k"] if command == "get" else []
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    p = outside([command, str(fifo), *extra], backend)
    if command == "dump":
        assert freecdb("cdbdump") == Result(111, b"", "pycdb: fatal: " + TRUNCATED + "\n")
        want = f"pycdb: fatal: {TRUNCATED}\n"
    else:
        want = f"pycdb: fatal: unable to read {fifo}: not a regular file (a FIFO)\n"
    assert (p.returncode, p.stdout, p.stderr.decode()) == (111, b"", want)
    kind = "a regular file or a pipe" if command == "dump" else "a regular file"
    p = outside([command, "/dev/zero", *extra], backend)
    assert (p.returncode, p.stdout, p.stderr.decode()) == (
        111,
        b"",
        f"pycdb: fatal: unable to read /dev/zero: not {kind} (a character device)\n",
    )


@pytest.mark.parametrize("command", ["dump", "stats", "get"])
def test_pipe_as_file(tmp_path: Path, backend: str, command: str) -> None:
    """cdbdump reads a pipe, cdbget and cdbstats seek (docs/format.md
    §11): pycdb dump reads /dev/stdin to its end, get and stats refuse it."""
    path = real_cdbmake(tmp_path, [(b"k", b"v"), (b"x" * 3000, b"y" * 5000)])
    extra = ["k"] if command == "get" else []
    p = outside([command, "/dev/stdin", *extra], backend, stdin=path.read_bytes())
    if command == "dump":
        theirs = freecdb("cdbdump", stdin_file=path)
        assert (p.returncode, p.stdout, p.stderr) == (0, theirs.out, b"")
    else:
        assert (p.returncode, p.stdout, p.stderr.decode()) == (
            111,
            b"",
            "pycdb: fatal: unable to read /dev/stdin: not a regular file (a FIFO)\n",
        )


def test_error_text_is_djbs() -> None:
    text = _util.oserror_text

    def system(number: int) -> OSError:
        return OSError(number, os.strerror(number))

    assert text(system(errno.ENOENT)) == "file does not exist"
    assert text(system(errno.EACCES)) == "access denied"
    assert text(system(errno.EAGAIN)) == "temporary failure"
    assert text(system(errno.ENOSPC)) == "out of disk space"
    assert text(OSError(4242, "Some Error")) == "some Error"  # djb has no name for it
    assert text(OSError(errno.EINVAL, "not a regular file")) == "not a regular file"
    assert text(MemoryError()) == "out of memory"


# ---------------------------------------------------------------------------
# the installed console script


def test_console_script_end_to_end(tmp_path: Path, backend: str) -> None:
    env = child_env()
    pycdb_script = script("pycdb")
    records = [(b"k%d" % i, b"v" * i) for i in range(100)] + [(b"k5", b"again")]
    text = cdbmake_input(records)

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [pycdb_script, *args],
            input=stdin,
            capture_output=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    assert run("cdbmake", "o.cdb", "o.tmp", stdin=text).returncode == 0
    theirs = real_cdbmake(tmp_path, records)
    assert (tmp_path / "o.cdb").read_bytes() == theirs.read_bytes()
    for args in (["dump"], ["stats"], ["get", "k5"], ["get", "k5", "1"], ["get", "nope"]):
        p = run(args[0], "o.cdb", *args[1:])
        q = freecdb(TOOL[args[0]], *args[1:], stdin_file=theirs)
        assert (p.returncode, p.stdout, p.stderr) == (q.rc, q.out, q.err.encode())
    p = run("cdbmake", "x.cdb", "x.tmp", stdin=b"+1,1:a->b")
    assert (p.returncode, p.stderr) == (
        111,
        b"pycdb: fatal: unable to read input: entry 1: unexpected end if input\n",
    )
    assert not (tmp_path / "x.tmp").exists()


def test_broken_pipe_is_a_clean_111(tmp_path: Path, backend: str) -> None:
    """Standard output closed early: exit 111 with a message, no traceback,
    no "Exception ignored" from the interpreter's last flush."""
    path = real_cdbmake(tmp_path, [(b"k%d" % i, b"v" * 1000) for i in range(3000)])
    env = child_env()
    for args in (["dump", str(path)], ["get", str(path), "k1"]):
        if args[0] == "get":
            path2 = real_cdbmake(tmp_path, [(b"k1", b"v" * 3_000_000)], "huge")
            args = ["get", str(path2), "k1"]
        p = subprocess.Popen(
            [script("pycdb"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert p.stdout is not None and p.stderr is not None
        p.stdout.read(1)
        p.stdout.close()
        err = p.stderr.read()
        p.stderr.close()
        assert p.wait(timeout=60) == 111
        assert err == b"pycdb: fatal: unable to write output: broken pipe\n"


# ---------------------------------------------------------------------------
# the findnext emulation on its own


def test_finder_skip_matches_repeated_findnext(tmp_path: Path) -> None:
    """skip(n) is n findnext() calls, also across a periodic walk."""
    path = tmp_path / "cycle.cdb"
    path.write_bytes(cyclic_cdb())
    with emulation.CdbFile(str(path)) as cdb:
        for key in SMALL_HASH_KEYS[:3]:
            for n in (1, 2, 3, 4, 10, 1000):
                a = emulation.Finder(cdb, key)
                r = a.skip(n)
                b = emulation.Finder(cdb, key)
                results = [b.findnext() for _ in range(n)]
                assert r == results[-1] == 1
                assert (
                    (a.loop, a.dpos, a.dlen)
                    == (b.loop, b.dpos, b.dlen)
                    == (1 + 3 * (n - 1), a.dpos, 2)
                )
            big = emulation.Finder(cdb, key)
            assert big.skip(1 << 64) == 0 and big.loop == (1 << 29) + 3


# ---------------------------------------------------------------------------
# get --all: every value, as tinycdb's cdb -q -m prints them


@given(
    records=st.lists(
        st.tuples(st.sampled_from([b"a", b"b", b"", b"k\n"]), st.binary(max_size=20)),
        max_size=12,
    ),
    key=st.sampled_from([b"a", b"b", b"", b"k\n", b"zz"]),
)
@settings(max_examples=40)
def test_get_all_is_tinycdbs_query(
    tmp_path_factory: pytest.TempPathFactory, records: list[tuple[bytes, bytes]], key: bytes
) -> None:
    directory = tmp_path_factory.mktemp("all")
    path = real_cdbmake(directory, records)
    ours = pycdb("get", "--all", str(path), key)
    theirs = subprocess.run(
        [ref("cdb"), "-q", "-m", str(path), key], capture_output=True, timeout=60
    )
    assert (ours.rc, ours.out) == (theirs.returncode, theirs.stdout)
    assert ours.err == ""


def test_get_all_usage_and_damage(tmp_path: Path) -> None:
    assert pycdb("get", "--all", "only-file").rc == 100
    path = tmp_path / "bad.cdb"
    path.write_bytes(b"\0" * 100)
    result = pycdb("get", "--all", str(path), "k")
    assert result.rc == 111
    assert result.err == (
        f"pycdb: fatal: unable to read {path}: not a cdb file: 100 bytes, shorter than the "
        "2048-byte header\n"
    )
