"""A database changed under a long-running process: rewritten in place
(``cp new.cdb live.cdb``), truncated, or swapped for something that is not
a file.  A RuleSet never crashes and never answers from torn bytes; a
Reader with ``copy=True`` neither.  And a hostile host name costs work in
proportion to its length."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import child_env, python, run_ref

import pycdb
from pycdb._keyorder import rules_keys
from pycdb.rules import RuleSet


def tcprules(path: Path, text: bytes) -> None:
    done = run_ref("tcprules", str(path), str(path) + ".tmp", input=text)
    assert done.returncode == 0, done.stderr


_TRUNCATE = textwrap.dedent(
    """
    import sys
    from pycdb import Reader
    from pycdb.rules import RuleSet
    path, what = sys.argv[1], sys.argv[2]
    if what == "ruleset":
        rs = RuleSet(path)
        print(rs.check("127.0.0.1").allowed)
        open(path, "r+b").truncate(0)
        print(rs.check("127.0.0.1").allowed)
    else:
        r = Reader(path, copy=(what == "copy"))
        print(r.get(b"127.") is not None)
        open(path, "r+b").truncate(0)
        print(r.get(b"127.") is not None)
    """
)


def _truncated(tmp_path: Path, what: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "r.cdb"
    tcprules(path, b"127.:allow\n:deny\n")
    return subprocess.run(
        python("-c", _TRUNCATE, str(path), what),
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )


def test_ruleset_survives_truncation_in_place(tmp_path: Path) -> None:
    """The issue's example: exit 135 (SIGBUS) before."""
    done = _truncated(tmp_path, "ruleset")
    assert done.returncode == 0, done.stderr
    # Within the default interval the copy answers; the file is not looked at.
    assert done.stdout.split() == ["True", "True"]


def test_reader_copy_survives_truncation_in_place(tmp_path: Path) -> None:
    done = _truncated(tmp_path, "copy")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_mapped_reader_in_place_hazard_is_real(tmp_path: Path) -> None:
    """What Reader's docstring warns of: a mapping shares the file, so an
    in-place truncation kills the process (why copy=True exists)."""
    done = _truncated(tmp_path, "map")
    assert done.returncode == -signal.SIGBUS


def test_ruleset_rides_out_an_in_place_copy(tmp_path: Path) -> None:
    """A writer rewrites the live file in place, slowly, again and again,
    while checks run on every change (reload_interval=0): each answer
    comes from the whole old file or the whole new one."""
    path = tmp_path / "r.cdb"
    versions = []
    for v in range(2):
        src = tmp_path / f"v{v}.cdb"
        text = b"".join(b'10.%d.%d.:allow,V="%d"\n' % (v, i, v) for i in range(300))
        tcprules(src, text + b':allow,V="%d"\n' % v)
        versions.append(src.read_bytes())
    path.write_bytes(versions[0])
    rules = RuleSet(path, reload_interval=0)
    stop = threading.Event()

    def rewrite() -> None:
        n = 0
        while not stop.is_set():
            data = versions[n % 2]
            with open(path, "r+b") as f:  # as cp does: truncate, then write
                f.truncate(0)
                for i in range(0, len(data), 4096):
                    f.write(data[i : i + 4096])
                    f.flush()
                    time.sleep(0.001)
            n += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    seen = set()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            d = rules.check("192.0.2.1")
            seen.add(d.env["V"])
    finally:
        stop.set()
        writer.join()
    assert seen <= {"0", "1"}
    assert seen  # and no exception: a copy takes far less than SETTLE


def test_ruleset_refuses_a_fifo(tmp_path: Path) -> None:
    """A FIFO at the path is refused at once (tcprulescheck: 'unable to
    read ...: invalid argument'), at construction and when the path
    becomes one: never a blocked caller."""
    fifo = tmp_path / "fifo.cdb"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        RuleSet(fifo)
    path = tmp_path / "r.cdb"
    tcprules(path, b":deny\n")
    rules = RuleSet(path, reload_interval=0)
    path.unlink()
    os.mkfifo(path)
    for _ in range(2):
        with pytest.raises(OSError, match="not a regular file"):
            rules.check("1.2.3.4")
    with pytest.raises(OSError, match="not a regular file"):
        pycdb.Reader(fifo)


def test_devices_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="character device"):
        RuleSet("/dev/zero")
    with pytest.raises(OSError, match="character device"):
        pycdb.Reader("/dev/zero", copy=True)


# ---- work in proportion to the input ---------------------------------------


def test_key_order_builds_no_key_longer_than_the_file_holds() -> None:
    host = b"a." * 200_000
    keys = list(rules_keys(b"1.2.3.4", host, b"u" * 500_000, 64))
    assert all(len(k) <= 64 for k in keys)
    assert len(keys) == 1 + 3 + 32 + 1 + 1  # the ip, 3 prefixes, 32 suffixes, =, ""
    # Without a bound, every key (the order is unchanged, only cut).
    assert list(rules_keys(b"1.2.3.4", b"x.y", b"u")) == [
        b"u@1.2.3.4",
        b"u@=x.y",
        b"1.2.3.4",
        b"=x.y",
        b"1.2.3.",
        b"1.2.",
        b"1.",
        b"=.y",
        b"=",
        b"",
    ]


_LONG_HOST = textwrap.dedent(
    """
    import sys
    from pycdb.rules import RuleSet
    rs = RuleSet(sys.argv[1])
    host = "a." * 300_000 + "example.com"
    for _ in range(3):
        d = rs.check("192.0.2.1", host, "u" * 300_000)
    print(d.rule)
    """
)


def test_a_huge_host_name_is_cheap(tmp_path: Path, backend: str) -> None:
    """A 600 KB host name with 300,000 dots: minutes before (every suffix
    built and hashed), now linear.  The generous timeout is the only
    limit; nothing is timed."""
    path = tmp_path / "r.cdb"
    tcprules(path, b"=.example.com:allow\n:deny\n")
    done = subprocess.run(
        python("-c", _LONG_HOST, str(path)),
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(backend=backend),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "=.example.com"
