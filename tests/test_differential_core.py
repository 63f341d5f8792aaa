"""pycdb against the real programs, on each backend: freecdb's cdbmake
(the writer's output must be byte-identical), cdbdump and cdbget (they
must read what pycdb writes), and tinycdb's `cdb` (a second, independent
implementation: -c builds, -d dumps, -q queries, -s counts).  Plus the
golden fixtures in tests/fixtures/cdb, made once by cdbmake."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from corehelpers import (
    HASH0_KEYS,
    Record,
    cdbmake_input,
    keys_in_table,
    model_file,
    parse_cdbmake,
    records,
    ref_hash,
)
from helpers import FIXTURES, ref, run_ref
from hypothesis import given
from hypothesis import strategies as st

import pycdb

CDB_FIXTURES = FIXTURES / "cdb"


def cdbmake(recs: list[Record], d: Path) -> bytes:
    out = d / "ref.cdb"
    proc = run_ref("cdbmake", str(out), str(d / "ref.tmp"), input=cdbmake_input(recs))
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def pycdb_write(recs: list[Record], path: Path) -> bytes:
    with pycdb.Writer(path) as w:
        for k, v in recs:
            w.add(k, v)
    return path.read_bytes()


def argv_keys(recs: list[Record], n: int, rng: random.Random) -> list[bytes]:
    """Up to n distinct keys that a command line can carry (no NUL; and
    cdbget refuses an empty key as bad usage)."""
    keys = [k for k in dict.fromkeys(k for k, _ in recs) if k and b"\0" not in k]
    rng.shuffle(keys)
    return keys[:n]


def grouped(recs: list[Record]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for k, v in recs:
        out.setdefault(k, []).append(v)
    return out


def run(*argv: str | bytes, stdin: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a program; freecdb's readers take the cdb on standard input,
    and cdbget seeks in it, so it must be the file, not a pipe."""
    if stdin is None:
        return subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    with open(stdin, "rb") as f:
        return subprocess.run(argv, capture_output=True, timeout=60, stdin=f)


# ---- cdbmake: byte identity ---------------------------------------------


@given(recs=records)
def test_writer_output_is_cdbmakes(tmp_path_factory, recs):
    d = tmp_path_factory.mktemp("make")
    want = cdbmake(recs, d)
    assert model_file(recs) == want  # the test model is right, too
    assert pycdb_write(recs, d / "t.cdb") == want
    # and pycdb reads what cdbmake wrote
    r = pycdb.Reader(d / "ref.cdb")
    assert list(r.items()) == recs
    for k, vs in grouped(recs).items():
        assert r.get_all(k) == vs


def _seeded(n: int, seed: int, max_key: int = 30, max_value: int = 60) -> list[Record]:
    rng = random.Random(seed)
    out: list[Record] = []
    for _ in range(n):
        if out and rng.random() < 0.05:
            key = rng.choice(out)[0]
        else:
            key = rng.randbytes(rng.randint(0, max_key))
        out.append((key, rng.randbytes(rng.randint(0, max_value))))
    return out


CASES = {
    "empty-database": [],
    "one-empty-record": [(b"", b"")],
    "empty-keys-and-values": [(b"", b"a"), (b"b", b""), (b"", b""), (b"", b"c")],
    "duplicates": [(b"k", b"%d" % i) for i in range(50)] + [(b"j", b"x"), (b"k", b"last")],
    "hash-zero": [(k, b"zero") for k in HASH0_KEYS] * 3,
    "one-table": [(k, k) for k in keys_in_table(200, 3000)],
    "two-tables-full": [(k, b"") for t in (0, 255) for k in keys_in_table(t, 700, b"%d-" % t)],
    "binary-keys": [(bytes([i]), bytes([255 - i])) for i in range(256)]
    + [(bytes(range(256)), b"\x00\n\xff"), (b"\x00" * 10, b"->\n")],
    "values-crossing-the-write-buffer": [(b"a", b"x" * 65535), (b"b", b"y" * 65536)]
    + [(b"c%d" % i, b"z" * 70000) for i in range(3)]
    + [(b"k" * 100_000, b"v" * 300_000)],
    "many-records": _seeded(30_000, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_writer_output_is_cdbmakes_for(tmp_path, case):
    recs = CASES[case]
    if case == "hash-zero":
        assert all(ref_hash(k) == 0 for k in HASH0_KEYS)
    want = cdbmake(recs, tmp_path)
    if case == "empty-database":
        assert len(want) == 2048
    assert pycdb_write(recs, tmp_path / "t.cdb") == want


# ---- freecdb's readers on pycdb's files ---------------------------------


@given(recs=records, seed=st.integers(0, 2**32))
def test_cdbdump_and_cdbget_read_pycdb_files(tmp_path_factory, recs, seed):
    path = tmp_path_factory.mktemp("dump") / "t.cdb"
    pycdb_write(recs, path)
    proc = run(ref("cdbdump"), stdin=path)
    assert (proc.returncode, proc.stdout) == (0, cdbmake_input(recs))

    cdbget = ref("cdbget")
    groups = grouped(recs)
    for key in argv_keys(recs, 3, random.Random(seed)):
        values = groups[key]
        assert run(cdbget, key, stdin=path).stdout == values[0]
        for skip in range(len(values) + 1):
            proc = run(cdbget, key, str(skip), stdin=path)
            if skip < len(values):
                assert (proc.returncode, proc.stdout) == (0, values[skip])
            else:
                assert (proc.returncode, proc.stdout) == (100, b"")
    if b"absent key \xff" not in groups:
        assert run(cdbget, b"absent key \xff", stdin=path).returncode == 100


# ---- tinycdb --------------------------------------------------------------


@given(recs=records, seed=st.integers(0, 2**32))
def test_tinycdb_agrees(tmp_path_factory, recs, seed):
    d = tmp_path_factory.mktemp("tiny")
    data = pycdb_write(recs, d / "t.cdb")
    cdb = ref("cdb")

    # -c: tinycdb builds the same bytes from the same records, and pycdb
    # reads its file.
    (d / "in.txt").write_bytes(cdbmake_input(recs))
    proc = run(cdb, "-c", str(d / "tiny.cdb"), str(d / "in.txt"))
    assert proc.returncode == 0, proc.stderr
    assert (d / "tiny.cdb").read_bytes() == data
    assert list(pycdb.Reader(d / "tiny.cdb").items()) == recs

    # -d: it dumps pycdb's file in cdbmake's format.
    proc = run(cdb, "-d", str(d / "t.cdb"))
    assert (proc.returncode, proc.stdout) == (0, cdbmake_input(recs))

    # -q: every value of a key (concatenated), or the n-th with -n.
    groups = grouped(recs)
    for key in argv_keys(recs, 3, random.Random(seed)):
        values = groups[key]
        # "--": a key may start with "-" (tinycdb uses getopt).
        proc = run(cdb, "-q", "--", str(d / "t.cdb"), key)
        assert (proc.returncode, proc.stdout) == (0, b"".join(values))
        for n in range(1, len(values) + 2):
            proc = run(cdb, "-q", "-n", str(n), "--", str(d / "t.cdb"), key)
            if n <= len(values):
                assert (proc.returncode, proc.stdout) == (0, values[n - 1])
            else:
                assert proc.returncode == 100

    # -s: its statistics count what pycdb wrote.
    proc = run(cdb, "-s", str(d / "t.cdb"))
    assert proc.returncode == 0
    stats = dict(line.split(b": ", 1) for line in proc.stdout.splitlines() if b": " in line)
    assert int(stats[b"number of records"]) == len(recs) == len(pycdb.Reader(d / "t.cdb"))
    for field, lens in ((b"key", [len(k) for k, _ in recs]), (b"val", [len(v) for _, v in recs])):
        low, avg, high = (int(n) for n in stats[field + b" min/avg/max length"].split(b"/"))
        assert high == max(lens, default=0)
        assert avg == ((sum(lens) + len(lens) // 2) // len(lens) if lens else 0)
        assert low == tinycdb_min(lens)


def tinycdb_min(lens: list[int]) -> int:
    """tinycdb's -s "min" restarts after each zero length (its 0 means
    'unset'): `if (!min || min > len) min = len`.  The program is the
    specification, quirks included."""
    low = 0
    for n in lens:
        if not low or low > n:
            low = n
    return low


def test_tinycdb_query_finds_the_empty_key_and_dash_keys(tmp_path):
    recs = [(b"", b"first"), (b"-n", b"1"), (b"", b"second"), (b"-n", b"2")]
    path = tmp_path / "t.cdb"
    pycdb_write(recs, path)
    proc = run_ref("cdb", "-q", "-n", "2", str(path), "")
    assert (proc.returncode, proc.stdout) == (0, b"second")
    assert pycdb.Reader(path).get_all("") == [b"first", b"second"]
    proc = run_ref("cdb", "-q", "-n", "2", "--", str(path), "-n")
    assert (proc.returncode, proc.stdout) == (0, b"2")
    assert pycdb.Reader(path).get_all("-n") == [b"1", b"2"]


# ---- golden fixtures ----------------------------------------------------

FIXTURE_NAMES = sorted(p.stem for p in CDB_FIXTURES.glob("*.cdb"))


def test_fixtures_are_all_there():
    assert FIXTURE_NAMES == ["binary", "dups", "empty", "hash0", "mixed", "onetable"]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_reads_and_rebuilds(tmp_path, name):
    recs = parse_cdbmake((CDB_FIXTURES / f"{name}.in").read_bytes())
    golden = (CDB_FIXTURES / f"{name}.cdb").read_bytes()
    with pycdb.Reader(CDB_FIXTURES / f"{name}.cdb") as r:
        assert len(r) == len(recs)
        assert list(r.items()) == recs
        for k, vs in grouped(recs).items():
            assert r.get(k) == vs[0]
            assert r.get_all(k) == vs
            assert k in r
    assert pycdb_write(recs, tmp_path / "t.cdb") == golden


def test_fixture_details():
    """What each fixture is for, checked (so a regenerated fixture that
    lost its point fails)."""
    assert (CDB_FIXTURES / "empty.cdb").read_bytes() == (b"\x00\x08\x00\x00" + bytes(4)) * 256
    dups = pycdb.Reader(CDB_FIXTURES / "dups.cdb")
    assert dups.get_all(b"one") == [b"first", b"second", b"third"]
    assert dups.get_all(b"") == [b"empty key", b"", b"empty key again"]
    hash0 = pycdb.Reader(CDB_FIXTURES / "hash0.cdb")
    assert all(pycdb.hash(k) == 0 for k in hash0)
    onetable = pycdb.Reader(CDB_FIXTURES / "onetable.cdb")
    assert {pycdb.hash(k) & 255 for k in onetable} == {42}
    binary = pycdb.Reader(CDB_FIXTURES / "binary.cdb")
    assert binary[bytes(range(256))] == bytes(range(255, -1, -1))
