"""RuleSet reloading: a file replaced by rename is picked up, no check
sees a mix of two files, old mappings go away, a missing file follows
tcpserver (-X or not)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import child_env, python
from rules_helpers import pycdb_make, write_cdb

import pycdb
from pycdb.rules import RuleSet

VERSIONS = 50


def version_text(v: int) -> bytes:
    """Rules whose every decision names the version, with ``v`` filler
    lines so that records move from one version to the next."""
    filler = b"".join(b"10.%d.%d.:deny\n" % (v, i) for i in range(v))
    return (
        filler
        + b'1.2.3.:allow,VERSION="%d",ALSO="%d"\n' % (v, v)
        + b'=.example.com:deny,VERSION="%d"\n' % v
        + b':allow,VERSION="%d"\n' % v
    )


def version_decisions(v: int) -> list[tuple[str, str]]:
    """(rule, data as latin-1) of version v for the checker's connections."""
    return [
        ("1.2.3.", f"+VERSION={v}\0+ALSO={v}\0"),
        ("=.example.com", f"D\0+VERSION={v}\0"),
        ("", f"+VERSION={v}\0"),
    ]


CHECKER = r"""
import json, select, sys
from pycdb.rules import RuleSet
rules = RuleSet(sys.argv[1], reload_interval=0)
conns = [("1.2.3.4", None, None), ("9.9.9.9", "mx.example.com", None), ("8.8.8.8", None, "joe")]
seen = {}
checks = 0
print("ready", flush=True)
while checks % 300 or not select.select([sys.stdin], [], [], 0)[0]:
    for conn in conns:
        d = rules.check(*conn)
        seen[(d.rule, d.data.decode("latin-1"))] = None
        checks += 1
last = [(d.rule, d.data.decode("latin-1")) for d in map(lambda c: rules.check(*c), conns)]
print(json.dumps({"checks": checks, "seen": list(seen), "last": last}))
"""


def test_another_process_replaces_the_file(tmp_path: Path, backend: str) -> None:
    """One process checks in a loop (reload_interval=0) while this one
    replaces the database VERSIONS times: no check fails, every decision
    is one some version makes, and the last version is seen at the end."""
    path = tmp_path / "rules.cdb"
    pycdb_make(version_text(0), path)
    checker = subprocess.Popen(
        python("-c", CHECKER, str(path)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        assert checker.stdout is not None and checker.stdin is not None
        assert checker.stdout.readline() == b"ready\n"
        for v in range(1, VERSIONS + 1):
            pycdb_make(version_text(v), path)
        checker.stdin.write(b"stop\n")
        out, err = checker.communicate(timeout=60)
    finally:
        if checker.poll() is None:
            checker.kill()
            checker.wait()
    assert checker.returncode == 0, err.decode()
    result = json.loads(out)
    every = {d for v in range(VERSIONS + 1) for d in version_decisions(v)}
    seen = {tuple(d) for d in result["seen"]}
    assert seen <= every, seen - every
    assert len(seen) > 3  # more than one version was seen
    assert result["checks"] > 0
    assert [tuple(d) for d in result["last"]] == version_decisions(VERSIONS)


def test_threads_check_while_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"1.2.3.", b"+V=0\0+W=0\0")])
    rules = RuleSet(path, reload_interval=0)
    stop = threading.Event()
    bad: list[object] = []
    seen: set[bytes] = set()

    def work() -> None:
        while not stop.is_set():
            try:
                d = rules.check("1.2.3.4")
                env = d.env
                if env["V"] != env["W"] or d.rule != "1.2.3.":
                    bad.append(d)
                seen.add(d.data)
            except Exception as exc:  # noqa: BLE001 - reported below
                bad.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for v in range(1, 40):
            # Records of every version at different places.
            write_cdb(
                path,
                [(b"pad%d" % i, b"x" * v) for i in range(v)]
                + [(b"1.2.3.", b"+V=%d\0+W=%d\0" % (v, v))],
            )
            time.sleep(0.002)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert bad == []
    assert rules.check("1.2.3.4").env == {"V": "39", "W": "39"}
    assert len(seen) > 1


def _mapped_inodes() -> set[int]:
    inodes = set()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6:
                inodes.add(int(fields[4]))
    return inodes


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_old_mapping_is_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pycdb.rules import ruleset as module

    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"+V=1\0")])
    old = path.stat().st_ino
    # A small database is read into a private copy, never mapped ...
    RuleSet(path).check("1.2.3.4")
    assert old not in _mapped_inodes()
    # ... a big one is mapped.
    monkeypatch.setattr(module, "COPY_LIMIT", 0)
    rules = RuleSet(path, reload_interval=0)
    decision = rules.check("1.2.3.4")
    assert old in _mapped_inodes()
    write_cdb(path, [(b"", b"+V=2\0")])
    new = path.stat().st_ino
    assert rules.check("1.2.3.4").env == {"V": "2"}
    # Released as soon as no check holds the old snapshot (CPython frees
    # on the last reference; no collection needed).
    assert old not in _mapped_inodes() and new in _mapped_inodes()
    assert decision.env == {"V": "1"}  # decisions are copies
    rules.close()
    assert new not in _mapped_inodes()
    with pytest.raises(ValueError, match="closed"):
        rules.check("1.2.3.4")


def test_reload_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pycdb.rules import ruleset as module

    now = [1000.0]
    monkeypatch.setattr(module, "_monotonic", lambda: now[0])
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"+V=1\0")])
    rules = RuleSet(path, reload_interval=5)
    write_cdb(path, [(b"", b"+V=2\0")])
    now[0] += 4.9
    assert rules.check("1.2.3.4").env == {"V": "1"}  # not due yet
    now[0] += 0.2
    assert rules.check("1.2.3.4").env == {"V": "2"}
    write_cdb(path, [(b"", b"+V=3\0")])
    assert rules.check("1.2.3.4").env == {"V": "2"}
    rules.reload()
    assert rules.check("1.2.3.4").env == {"V": "3"}


def test_unchanged_file_is_not_reopened(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"+V=1\0")])
    rules = RuleSet(path, reload_interval=0)
    snap = rules._snap
    for _ in range(5):
        rules.check("1.2.3.4")
    assert rules._snap is snap


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    with pytest.raises(FileNotFoundError, match="rules.cdb"):
        RuleSet(path)
    rules = RuleSet(path, reload_interval=0, allow_missing=True)
    assert rules.check("1.2.3.4") == (None, b"")  # tcpserver -X: allow
    write_cdb(path, [(b"1.2.3.", b"D\0")])
    assert not rules.check("1.2.3.4").allowed  # appeared: used
    path.unlink()
    assert rules.check("1.2.3.4") == (None, b"")
    write_cdb(path, [(b"", b"+V=1\0")])
    rules = RuleSet(path, reload_interval=0)
    path.unlink()
    for _ in range(2):  # every check while it is missing
        with pytest.raises(FileNotFoundError, match="rules.cdb"):
            rules.check("1.2.3.4")
    write_cdb(path, [(b"", b"+V=2\0")])
    assert rules.check("1.2.3.4").env == {"V": "2"}


def test_corrupt_replacement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unsound new version is not taken: the last good one answers for
    SETTLE seconds (it may be a copy in progress), then every check says
    what is wrong, until a sound file is there."""
    from pycdb.rules import ruleset as module

    now = [1000.0]
    monkeypatch.setattr(module, "_monotonic", lambda: now[0])
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"+V=1\0")])
    rules = RuleSet(path, reload_interval=0)
    tmp = tmp_path / "bad.tmp"
    tmp.write_bytes(b"not a cdb")
    os.replace(tmp, path)
    assert rules.check("1.2.3.4").env == {"V": "1"}
    now[0] += module.SETTLE - 0.01
    assert rules.check("1.2.3.4").env == {"V": "1"}
    now[0] += 0.02
    for _ in range(2):
        with pytest.raises(pycdb.CorruptError, match="not a cdb file"):
            rules.check("1.2.3.4")
    write_cdb(path, [(b"", b"+V=2\0")])
    assert rules.check("1.2.3.4").env == {"V": "2"}
    (tmp_path / "empty.cdb").write_bytes(b"")
    with pytest.raises(pycdb.CorruptError, match="0 bytes"):
        RuleSet(tmp_path / "empty.cdb")


def test_unreadable_file(tmp_path: Path) -> None:
    # A directory opens but does not map (tcprulescheck crashes on one).
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        RuleSet(tmp_path, allow_missing=True)
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"+V=1\0")])
    rules = RuleSet(path, reload_interval=0)
    path.unlink()
    path.mkdir()
    for _ in range(2):  # every check while it stays
        with pytest.raises(IsADirectoryError, match="rules.cdb"):
            rules.check("1.2.3.4")


def test_bad_interval(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [])
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            RuleSet(path, reload_interval=bad)
    assert RuleSet(path, reload_interval=0).check("1.2.3.4") == (None, b"")
