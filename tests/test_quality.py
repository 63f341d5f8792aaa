"""The project's own checks, in the test run: ruff (lint and format) and
mypy --strict on the package.  They read the source tree, so they run
once, not once per backend."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """Not a per-backend test: run it once."""
    yield None


@pytest.mark.parametrize(
    "args",
    [
        ["check", "pycdb", "tests", "benchmarks", "fuzz", "noxfile.py"],
        ["format", "--check", "pycdb", "tests", "benchmarks", "fuzz", "noxfile.py"],
    ],
    ids=["lint", "format"],
)
def test_ruff(args: list[str]) -> None:
    done = subprocess.run([script("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = subprocess.run([script("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
