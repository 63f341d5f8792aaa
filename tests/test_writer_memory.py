"""The writer's memory: records stream to disk and the bookkeeping is a
few machine words per record (hash and position, 8 bytes, plus the
sorted copy made at finish), in both backends.

Each build runs under helpers.run_measured, which reports the peak
resident size of that one process.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from corehelpers import backends
from helpers import SLOW, child_env, python, run_measured

from pycdb import _backend


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """The tests name the backend they measure: run each once."""
    yield None


BUILD = textwrap.dedent(
    """
    import sys
    import pycdb

    name, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with pycdb.Writer(path) as w:
        add = w.add
        for i in range(n):
            add(b"%d" % i, b"v")
    assert len(w) == n
    assert w.backend == name, w.backend
    """
)


def peak_rss_mb(name: str, n: int, path) -> float:  # type: ignore[no-untyped-def]
    proc, kib = run_measured(
        python("-c", BUILD, name, str(n), str(path)), env=child_env(backend=name), timeout=3600
    )
    assert proc.returncode == 0, proc.stderr
    return kib / 1024


def check_build(path, n: int) -> None:  # type: ignore[no-untyped-def]
    import pycdb

    with _backend.use("cffi"):
        r = pycdb.Reader(path)
        assert len(r) == n
        for i in (0, n // 2, n - 1):
            assert r[b"%d" % i] == b"v"


def test_one_million_records_cffi(tmp_path):
    """Peak memory above the interpreter's own grows by a few words per
    record: at most 32 bytes a record (the C writer needs 16: 8 in its
    blocks, 8 in the sorted copy at finish), so 1M records add < 32 MB."""
    assert "cffi" in backends()
    n = 1_000_000
    base = peak_rss_mb("cffi", 0, tmp_path / "empty.cdb")
    peak = peak_rss_mb("cffi", n, tmp_path / "t.cdb")
    per_record = (peak - base) * 2**20 / n
    assert per_record < 32, f"{per_record:.1f} bytes per record ({base:.0f} -> {peak:.0f} MB)"
    check_build(tmp_path / "t.cdb", n)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="10M records: set PYCDB_SLOW=1")
@pytest.mark.parametrize("name", ["cffi", "pure"])
def test_ten_million_records_stay_under_300_mb(tmp_path, name):
    assert name in backends()
    n = 10_000_000
    peak = peak_rss_mb(name, n, tmp_path / "t.cdb")
    print(f"{name}: peak RSS {peak:.0f} MB for {n} records")
    assert peak < 300, f"{name}: {peak:.0f} MB"
    check_build(tmp_path / "t.cdb", n)
