"""Helpers for the tests (importable: pytest puts tests/ on sys.path, never
the source tree, so the installed pycdb is what gets tested)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

STRICT = bool(os.environ.get("CI")) or os.environ.get("PYCDB_REQUIRE_CFFI") == "1"
SLOW = os.environ.get("PYCDB_SLOW") == "1"
FIXTURES = Path(__file__).parent / "fixtures"


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing (a reference program, a tool, the
    cffi backend): the test is skipped on a developer's machine, and fails
    in CI (STRICT), where a skip would hide that it never ran."""
    if STRICT:
        pytest.fail(message)
    pytest.skip(message)


def ref(program: str) -> str:
    """The path of a reference program (tcprules, cdbmake, cdb, ...):
    skips the test locally when it is missing, fails it in CI."""
    path = shutil.which(program)
    if path is None:
        unavailable(
            f"reference program {program!r} is not installed "
            "(apt-get install ucspi-tcp freecdb tinycdb)"
        )
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


# The go-between for peak-memory measurements: a child forked straight
# from pytest carries pytest's resident pages into its own ru_maxrss
# (Linux records the old image's high-water mark at exec), so the program
# is started from this small interpreter instead, which reports the exit
# code and the child's peak (KiB) as the last line of its output.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stdout.write("\\n%d %d\\n" % (os.waitstatus_to_exitcode(status), usage.ru_maxrss))
"""


def run_measured(
    argv: list[str], **kwargs: object
) -> tuple[subprocess.CompletedProcess[bytes], int]:
    """Run ``argv`` (argv[0] a path) and return (its result, its peak RSS
    in KiB).  ``kwargs`` go to subprocess.run (stdin, cwd, env, ...)."""
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _MEASURE, *argv], capture_output=True, **kwargs
    )  # type: ignore[call-overload]
    out, _, tail = proc.stdout.rstrip(b"\n").rpartition(b"\n")
    code, kib = tail.split()
    done = subprocess.CompletedProcess(argv, int(code), out, proc.stderr)
    return done, int(kib)
