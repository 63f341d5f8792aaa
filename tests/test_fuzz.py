"""Short runs of the fuzz harnesses in fuzz/ (the long runs and their
figures are in fuzz/README.md): the atheris differential harness over
both backends for a bounded number of inputs, and, where clang can build
it, the libFuzzer harness of the C reader for about ten seconds.

In CI (STRICT) a missing fuzz tool fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from corehelpers import backends
from helpers import SLOW, child_env, python, unavailable

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
ATHERIS_RUNS = 200_000 if SLOW else 20_000
LIBFUZZER_SECONDS = 60 if SLOW else 10


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """The harnesses drive both backends themselves: run each test once."""
    yield None


def missing(tool: str, how: str) -> NoReturn:
    unavailable(f"{tool} is not available ({how})")


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    out = tmp_path / "seeds"
    subprocess.run(python(str(FUZZ / "make_seeds.py"), str(out)), env=child_env(), check=True)
    assert len(list(out.iterdir())) >= 5
    return out


def executed(stderr: str) -> int:
    match = re.search(r"stat::number_of_executed_units: (\d+)", stderr)
    assert match, stderr[-2000:]
    return int(match.group(1))


def test_atheris_differential_harness(tmp_path: Path, seeds: Path) -> None:
    backends()  # comparing needs both
    if importlib.util.find_spec("atheris") is None:
        missing("atheris", "pip install atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    proc = subprocess.run(
        python(
            str(FUZZ / "fuzz_reader.py"),
            f"-runs={ATHERIS_RUNS}",
            "-max_total_time=120",
            "-timeout=10",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(seeds),
        ),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert executed(proc.stderr) >= min(ATHERIS_RUNS, 2000)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-"))]


def build_libfuzzer(tmp_path: Path) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        missing("clang", "apt-get install clang libclang-rt-14-dev")
    binary = tmp_path / "cdb_read_fuzzer"
    proc = subprocess.run(
        [
            str(clang),
            "-g",
            "-O1",
            "-fsanitize=fuzzer,address,undefined",
            "-fno-sanitize-recover=undefined",
            "-I",
            str(ROOT / "src_c"),
            str(FUZZ / "cdb_read_fuzzer.c"),
            str(ROOT / "src_c" / "cdb_read.c"),
            "-o",
            str(binary),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        if "libclang_rt.fuzzer" in proc.stderr:
            missing("libFuzzer's runtime", "apt-get install libclang-rt-14-dev")
        raise AssertionError(proc.stderr)
    return binary


def test_libfuzzer_c_reader(tmp_path: Path, seeds: Path) -> None:
    binary = build_libfuzzer(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    proc = subprocess.run(
        [
            str(binary),
            f"-max_total_time={LIBFUZZER_SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(seeds),
        ],
        capture_output=True,
        text=True,
        timeout=LIBFUZZER_SECONDS + 120,
        env={**os.environ, "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert executed(proc.stderr) > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))]
