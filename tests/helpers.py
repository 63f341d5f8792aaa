"""Helpers for the tests (importable: pytest puts tests/ on sys.path, never
the source tree, so the installed pycdb is what gets tested)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import pytest

import pycdb

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


#: Where Debian's ucspi-tcp-ipv6 is unpacked (``apt-get download
#: ucspi-tcp-ipv6 && dpkg-deb -x``: README.md's test command does it; the
#: package conflicts with ucspi-tcp, so it is never installed);
#: PYCDB_UCSPI_TCP_IPV6 names another directory it was unpacked into.
UCSPI_TCP_IPV6 = Path(os.environ.get("PYCDB_UCSPI_TCP_IPV6") or "/opt/ucspi-tcp-ipv6")


def ipv6_ref(program: str) -> str:
    """The path of a program of Debian's ucspi-tcp-ipv6 (tcprules,
    tcprulescheck, tcpserver) in :data:`UCSPI_TCP_IPV6`: skips the test
    locally when it is not there, fails it in CI."""
    path = UCSPI_TCP_IPV6 / "usr" / "bin" / program
    if not os.access(path, os.X_OK):
        unavailable(
            f"ucspi-tcp-ipv6's {program} is not at {path} (mkdir -p {UCSPI_TCP_IPV6} && cd "
            f"{UCSPI_TCP_IPV6} && apt-get download ucspi-tcp-ipv6 && dpkg-deb -x "
            "ucspi-tcp-ipv6_*.deb .; or set PYCDB_UCSPI_TCP_IPV6)"
        )
    return str(path)


# ---- subprocesses that run pycdb ---------------------------------------------
#
# A test that starts ``python -c ...`` or the ``pycdb`` command must test
# what the test itself tests: the installed package (not the source tree
# in the working directory) and the backend the autouse ``backend``
# fixture made active.  Every such subprocess is started with these
# helpers: python() or script() for the command, child_env() for the
# environment.


def python(*args: str) -> list[str]:
    """The command line ``python ARGS`` for this interpreter, isolated
    (``-I``): neither the working directory (for ``-c``; the unbuilt source
    tree when pytest runs from the checkout) nor a script's directory goes
    on sys.path, and PYTHON* variables are ignored.  ``-I`` behaves the
    same on every CPython since 3.4; ``-P`` and PYTHONSAFEPATH, which keep
    only the path out, exist from 3.11 on."""
    return [sys.executable, "-I", *args]


def script(name: str) -> str:
    """The console script ``name`` (``pycdb``, ``ruff``, ``mypy``) installed
    with this interpreter, never one found elsewhere on PATH."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        unavailable(f"{name} is not installed beside {sys.executable} (pip install '.[test]')")
    return str(path)


def child_env(
    env: Mapping[str, str] | Mapping[bytes, bytes] | None = None, *, backend: str | None = None
) -> dict[str, str]:
    """The environment for a subprocess that runs pycdb: ``env`` (by
    default this process's own) with PYCDB_BACKEND set to ``backend``, by
    default the backend active in the calling test, so that the child
    tests the same backend as the test's parameter.  Bytes names and
    values are kept byte for byte (as surrogate escapes, which subprocess
    encodes back)."""
    base = os.environ if env is None else env
    out = {os.fsdecode(name): os.fsdecode(value) for name, value in base.items()}
    out["PYCDB_BACKEND"] = backend or pycdb.BACKEND
    return out


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
    command = [*python("-S", "-c", _MEASURE), *argv]
    proc = subprocess.run(command, capture_output=True, **kwargs)  # type: ignore[call-overload]
    out, _, tail = proc.stdout.rstrip(b"\n").rpartition(b"\n")
    code, kib = tail.split()
    done = subprocess.CompletedProcess(argv, int(code), out, proc.stderr)
    return done, int(kib)
