"""Writers across fork() and signals: a child never touches its parent's
file, and a killed writer (the library's, ``pycdb make``, ``pycdb
cdbmake``) leaves nothing behind, whether the system names the file only
at commit (O_TMPFILE) or not (the fallback: a hidden name, removed as the
signal unwinds the command)."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from helpers import child_env, python

import pycdb

_FORK = textwrap.dedent(
    """
    import os, sys
    import pycdb
    target = sys.argv[1]
    w = pycdb.Writer(target)
    w.add(b"parent", b"1")
    pid = os.fork()
    if pid == 0:
        w.add(b"child", b"2")      # the child's own copy of the maker
        del w                     # dropped in the child: must touch nothing
        sys.exit(0)
    os.waitpid(pid, 0)
    w.add(b"after", b"3")
    w.commit()
    print(sorted(os.listdir(os.path.dirname(target))))
    """
)


def test_a_forked_child_leaves_the_parents_writer_alone(tmp_path: Path) -> None:
    target = tmp_path / "t.cdb"
    done = subprocess.run(
        python("-c", _FORK, str(target)),
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['t.cdb']"
    with pycdb.Reader(target) as r:
        assert list(r.items()) == [(b"parent", b"1"), (b"after", b"3")]


def test_a_child_cannot_commit_its_parents_writer(tmp_path: Path) -> None:
    w = pycdb.Writer(tmp_path / "t.cdb")
    w._pid = -1  # as seen from a child of fork()
    with pytest.raises(ValueError, match="another process"):
        w.commit()
    w._pid = os.getpid()
    w.abort()


_LIBRARY = textwrap.dedent(
    """
    import sys
    import pycdb
    import pycdb.writer
    if sys.argv[2] == "named":
        pycdb.writer._O_TMPFILE = 0  # as on a system without it
    w = pycdb.Writer(sys.argv[1], tmp_path=sys.argv[1] + ".tmp")
    w.add(b"k", b"v" * 100_000)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_library_writer_leaves_nothing(tmp_path: Path, sig: int) -> None:
    target = tmp_path / "t.cdb"
    target.write_bytes(b"old")
    proc = subprocess.Popen(
        python("-c", _LIBRARY, str(target), "unnamed"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == -sig
    assert sorted(os.listdir(tmp_path)) == ["t.cdb"] and target.read_bytes() == b"old"


def _start_cli(tmp_path: Path, argv: list[str], named: bool) -> subprocess.Popen[bytes]:
    """The command, its standard input a pipe kept open (so it is still
    reading when killed)."""
    code = "import sys, pycdb.writer, pycdb.cli\n"
    if named:
        code += "pycdb.writer._O_TMPFILE = 0\n"
    code += "sys.argv[0] = 'pycdb'\npycdb.cli.run()\n"
    return subprocess.Popen(
        python("-c", code, *argv),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=child_env(),
    )


def _wait_for_file(predicate: object, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not predicate():  # type: ignore[operator]
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("command", ["make", "cdbmake"])
def test_a_killed_command_leaves_nothing(
    tmp_path: Path, command: str, sig: int, named: bool
) -> None:
    (tmp_path / "out.cdb").write_bytes(b"old")
    proc = _start_cli(tmp_path, [command, "out.cdb", "out.tmp"], named)
    assert proc.stdin is not None
    line = b"10.0.0.1:allow\n" if command == "make" else b"+1,1:a->b\n"
    proc.stdin.write(line * 20_000)  # past the writers' 64 KiB buffer
    proc.stdin.flush()
    # The records are being written: to an unnamed file (its size shows in
    # the file system's usage only), or to a hidden one.
    if named:
        _wait_for_file(lambda: len(os.listdir(tmp_path)) == 2, proc)
    else:
        time.sleep(0.5)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == -sig, proc.stderr.read() if proc.stderr else b""
    assert sorted(os.listdir(tmp_path)) == ["out.cdb"]
    assert (tmp_path / "out.cdb").read_bytes() == b"old"
