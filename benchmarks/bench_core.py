"""The core issue's benchmarks: 1,000,000 records (keys ``b"key%08d"`` in
random order, 16-byte values), pycdb's two backends side by side with
cdbx, pure-cdb and djb's ``cdbmake``: get (hits and misses), ``in`` and
``[]`` beside cdbx's, build, and peak memory of a build.

pure-cdb ships a compiled hash function; ``pure-cdb-pyhash`` is the same
reader with its pure-Python hash, the fair peer for pycdb's pure backend.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from _bench import REFERENCE, measured, report

import pycdb
from pycdb import _backend

N = int(os.environ.get("PYCDB_BENCH_N", "1000000"))
BATCH = 20_000
VALUE = b"v" * 16
REFERENCE.update(dict.fromkeys(["get-hit", "get-miss", "in-hit", "in-miss", "getitem-hit"], "cdbx"))
REFERENCE.update({"build": "cdbx", "build-rss": "cdbx"})

cdbx = pytest.importorskip("cdbx")
cdblib = pytest.importorskip("cdblib")


def _pyhash(s: bytes) -> int:
    # pure-cdb's own pure-Python djb_hash (shadowed by its C one on import).
    h = 5381
    for c in s:
        h = (((h << 5) + h) ^ c) & 0xFFFFFFFF
    return h


class Data:
    def __init__(self, directory: Path) -> None:
        rnd = random.Random(20261126)
        self.dir = directory
        self.keys = [b"key%08d" % i for i in range(N)]
        rnd.shuffle(self.keys)
        self.hits = rnd.sample(self.keys, BATCH)
        self.misses = [b"key%08d" % (N + i) for i in rnd.sample(range(N), BATCH)]
        self.records = directory / "records.txt"
        with open(self.records, "wb") as f:
            for k in self.keys:
                f.write(b"+%d,%d:%s->%s\n" % (len(k), len(VALUE), k, VALUE))
            f.write(b"\n")
        self.path = directory / "ref.cdb"
        with open(self.records, "rb") as f:
            subprocess.run(
                ["cdbmake", str(self.path), str(self.path) + ".tmp"], stdin=f, check=True
            )


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    if shutil.which("cdbmake") is None:
        pytest.skip("cdbmake (Debian freecdb) is not installed")
    return Data(tmp_path_factory.mktemp("core"))


def _opener(impl: str, path: Path) -> Callable[[bytes], Any]:
    if impl.startswith("pycdb-"):
        with _backend.use(impl.split("-")[1]):
            return pycdb.Reader(path).get
    if impl == "cdbx":
        return cdbx.CDB(str(path)).get  # type: ignore[no-any-return]
    reader = cdblib.Reader.from_file_path(str(path))
    if impl == "pure-cdb-pyhash":
        reader.hashfn = _pyhash
    return reader.get  # type: ignore[no-any-return]


READERS = ["pycdb-cffi", "pycdb-pure", "cdbx", "pure-cdb", "pure-cdb-pyhash"]


@pytest.mark.parametrize("impl", READERS)
@pytest.mark.parametrize("kind", ["hit", "miss"])
def test_get(benchmark: Any, data: Data, impl: str, kind: str) -> None:
    get = _opener(impl, data.path)
    keys = data.hits if kind == "hit" else data.misses
    expect = VALUE if kind == "hit" else None
    assert get(keys[0]) == expect and get(keys[-1]) == expect

    def run() -> None:
        for k in keys:
            get(k)

    slow = impl.startswith(("pycdb-pure", "pure-cdb"))
    benchmark.group = f"get-{kind}"
    benchmark.pedantic(run, rounds=5 if slow else 15, warmup_rounds=1)
    measured(benchmark, f"get-{kind}", impl, per=len(keys))


def _mapping(impl: str, path: Path) -> Any:
    if impl == "cdbx":
        return cdbx.CDB(str(path))
    with _backend.use(impl.split("-")[1]):
        return pycdb.Reader(path)


@pytest.mark.parametrize("impl", ["pycdb-cffi", "cdbx"])
@pytest.mark.parametrize("form", ["in-hit", "in-miss", "getitem-hit"])
def test_operators(benchmark: Any, data: Data, impl: str, form: str) -> None:
    """``key in db`` and ``db[key]``, written as operators (no call in the
    loop but the one the operator makes)."""
    db = _mapping(impl, data.path)
    keys = data.misses if form == "in-miss" else data.hits
    if form == "getitem-hit":
        assert db[keys[0]] == VALUE

        def run() -> None:
            for k in keys:
                db[k]
    else:
        assert (keys[0] in db) is (form == "in-hit")

        def run() -> None:
            for k in keys:
                k in db  # noqa: B015

    benchmark.group = form
    benchmark.pedantic(run, rounds=15, warmup_rounds=1)
    measured(benchmark, form, impl, per=len(keys))


def _build(impl: str, data: Data, path: Path) -> None:
    if impl == "cdbmake":
        with open(data.records, "rb") as f:
            subprocess.run(["cdbmake", str(path), str(path) + ".tmp"], stdin=f, check=True)
    elif impl.startswith("pycdb-"):
        with _backend.use(impl.split("-")[1]), pycdb.Writer(path) as w:
            add = w.add
            for k in data.keys:
                add(k, VALUE)
    elif impl == "cdbx":
        maker = cdbx.CDB.make(str(path))
        for k in data.keys:
            maker.add(k, VALUE)
        maker.commit().close()
    else:
        with open(path, "wb") as f, cdblib.Writer(f) as w:
            for k in data.keys:
                w.put(k, VALUE)


@pytest.mark.parametrize("impl", ["pycdb-cffi", "pycdb-pure", "cdbx", "pure-cdb", "cdbmake"])
def test_build(benchmark: Any, data: Data, impl: str) -> None:
    path = data.dir / f"build-{impl}.cdb"
    benchmark.group = "build"
    benchmark.pedantic(_build, args=(impl, data, path), rounds=3, warmup_rounds=0)
    measured(benchmark, "build", impl)
    # Every writer must have produced cdbmake's bytes (pure-cdb too).
    assert path.read_bytes() == data.path.read_bytes(), impl


@pytest.mark.parametrize("impl", ["pycdb-cffi", "pycdb-pure", "cdbx", "pure-cdb", "cdbmake"])
def test_build_peak_rss(data: Data, impl: str) -> None:
    script = str(Path(__file__).with_name("_rss.py"))

    def rss(task: str) -> float:
        out = subprocess.run(
            [sys.executable, script, task, impl, str(N), str(data.dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip())

    peak = rss("build")
    base = 0.0 if impl == "cdbmake" else rss("baseline")
    report("build-rss", impl, peak, note=f"(interpreter + key loop alone: {base:.1f} MB)")
