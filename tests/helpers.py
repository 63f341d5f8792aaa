"""Helpers for the tests (importable: pytest puts tests/ on sys.path, never
the source tree, so the installed pycdb is what gets tested)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

STRICT = bool(os.environ.get("CI")) or os.environ.get("PYCDB_REQUIRE_CFFI") == "1"
SLOW = os.environ.get("PYCDB_SLOW") == "1"
FIXTURES = Path(__file__).parent / "fixtures"


def ref(program: str) -> str:
    """The path of a reference program (tcprules, cdbmake, cdb, ...):
    skips the test locally when it is missing, fails it in CI."""
    path = shutil.which(program)
    if path is None:
        message = (
            f"reference program {program!r} is not installed "
            "(apt-get install ucspi-tcp freecdb tinycdb)"
        )
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_ref(
    program: str,
    *args: str,
    input: bytes = b"",
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a reference program, capturing its output and exit code."""
    return subprocess.run(
        [ref(program), *args], input=input, capture_output=True, cwd=cwd, env=env, timeout=60
    )
