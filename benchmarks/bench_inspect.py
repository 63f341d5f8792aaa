"""The inspection issue's benchmarks: ``pycdb validate`` and ``pycdb
decompile`` (the library calls behind them) on a 1,000,000-line rules
database compiled by the real ``tcprules``, on both backends.  The
reference is the real ``tcprules`` compiling the same text: reading a
database back should cost a small multiple of writing it.

Run: ``pytest benchmarks/bench_inspect.py --benchmark-enable``.
``PYCDB_BENCH_N`` sets the number of lines.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _bench import REFERENCE, measured

from pycdb import _backend
from pycdb.rules.decompile import decompile
from pycdb.rules.soundness import validate_rules

N = int(os.environ.get("PYCDB_BENCH_N", "1000000"))
REFERENCE.update({"inspect-validate": "tcprules", "inspect-decompile": "tcprules"})


def _rules(n: int) -> bytes:
    """A blocklist-style file: single IPs, a few short ranges, hosts,
    prefixes with a message."""
    rnd = random.Random(7)
    lines = []
    for i in range(n):
        a, b, c, d = (rnd.randrange(256) for _ in range(4))
        r = rnd.random()
        if r < 0.03:
            lines.append(b'%d.%d.%d.%d-%d:allow,RELAYCLIENT=""' % (a, b, c, d % 250, d % 250 + 5))
        elif r < 0.6:
            lines.append(b"%d.%d.%d.%d:deny" % (a, b, c, d))
        elif r < 0.7:
            lines.append(b'=host%d.example.com:allow,RELAYCLIENT="",RBLSMTPD=""' % i)
        elif r < 0.8:
            lines.append(b'%d.%d.%d.:allow,RBLSMTPD="-blocked, see %d"' % (a, b, c, i % 100))
        else:
            lines.append(b"%d.%d.%d.%d:allow" % (a, b, c, d))
    return b"\n".join(lines) + b"\n:deny\n"


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tcprules = shutil.which("tcprules")
    if tcprules is None:
        pytest.skip("tcprules is not installed")
    directory = tmp_path_factory.mktemp("inspect")
    text = directory / "rules"
    text.write_bytes(_rules(N))
    with open(text, "rb") as f:
        subprocess.run([tcprules, str(directory / "r.cdb"), str(directory / "r.tmp")], stdin=f)
    return text, directory / "r.cdb"


def test_tcprules(benchmark: Any, database: tuple[Path, Path]) -> None:
    text, path = database
    tcprules = shutil.which("tcprules") or "tcprules"

    def run() -> None:
        with open(text, "rb") as f:
            subprocess.run([tcprules, str(path) + ".x", str(path) + ".tmp"], stdin=f, check=True)

    benchmark.pedantic(run, rounds=3)
    for group in ("inspect-validate", "inspect-decompile"):
        measured(benchmark, group, "tcprules")


@pytest.mark.parametrize("impl", _backend.available())
def test_validate(benchmark: Any, database: tuple[Path, Path], impl: str) -> None:
    _, path = database
    with _backend.use(impl):
        report = benchmark.pedantic(validate_rules, (path,), rounds=3)
    assert report.sound and report.canonical and report.kind == "tcprules"
    measured(benchmark, "inspect-validate", f"pycdb-{impl}")


@pytest.mark.parametrize("impl", _backend.available())
def test_decompile(benchmark: Any, database: tuple[Path, Path], impl: str) -> None:
    _, path = database

    def run() -> int:
        with decompile(path) as d:
            return sum(map(len, d.chunks()))

    with _backend.use(impl):
        size = benchmark.pedantic(run, rounds=3)
    assert size > 0
    measured(benchmark, "inspect-decompile", f"pycdb-{impl}")
