"""qmail's control/morercpthosts.cdb in pycdb.integrations.aiosmtpd:
consulted after rcpthosts as qmail's rcpthosts() consults it (the domain
A-Z lower-cased, then itself and each suffix starting at a '.'), and read
again when replaced under a running server.  The databases are made by
freecdb's cdbmake from the records qmail-newmrh writes (each line of
control/morercpthosts lower-cased, as a key with empty data)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ref
from rules_helpers import compile_rules
from test_relay import serving
from test_relay_hardening import RELAY_ATTEMPT, NoHandler, conversation, run_relay

from pycdb import CorruptError
from pycdb.integrations.aiosmtpd import CONTROLS_UNREADABLE, NOT_IN_RCPTHOSTS, RelayPolicy
from pycdb.rules import RuleSet


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """The database is read by the default backend: run once."""
    yield None


def newmrh(path: Path, domains: list[str]) -> None:
    """qmail-newmrh's database of ``domains``, made by the real cdbmake
    and renamed into place."""
    records = b"".join(
        b"+%d,0:%s->\n" % (len(key), key) for key in (d.lower().encode() for d in domains)
    )
    subprocess.run(
        [ref("cdbmake"), str(path), str(path) + ".tmp"], input=records + b"\n", check=True
    )


def policy(tmp_path: Path, more: Path) -> RelayPolicy:
    compile_rules(b":allow\n", tmp_path / "rules.cdb")
    return RelayPolicy(
        RuleSet(tmp_path / "rules.cdb", reload_interval=0),
        ["local.example"],
        None,
        morercpthosts=more,
    )


def test_suffixes_as_qmail(tmp_path: Path) -> None:
    more = tmp_path / "morercpthosts.cdb"
    newmrh(more, ["More.Example", ".sub.more.example"])
    p = policy(tmp_path, more)
    assert p.in_rcpthosts("a@local.example")  # rcpthosts first
    assert p.in_rcpthosts("a@more.example") and p.in_rcpthosts("a@MORE.EXAMPLE")
    assert p.in_rcpthosts("a@mx.sub.More.example")
    assert not p.in_rcpthosts("a@sub.more.example")  # '.sub...' covers only names under it
    assert not p.in_rcpthosts("a@mx.more.example")
    assert not p.in_rcpthosts("a@other.example")
    assert p.in_rcpthosts("postmaster")  # no '@': qmail adds its own domain


def test_replaced_under_a_running_server(tmp_path: Path) -> None:
    """qmail-newmrh renames a new database into place: the next recipient
    sees it; a database removed is none; one that cannot be read answers
    qmail-smtpd's 421 for that recipient, and a good one again is used."""
    more = tmp_path / "morercpthosts.cdb"
    newmrh(more, ["first.example"])
    p = policy(tmp_path, more)
    rcpt = RELAY_ATTEMPT.replace(b"victim@far.example", b"bob@second.example")
    with serving(p, NoHandler()) as port:

        def answer() -> bytes:
            with socket.create_connection(("127.0.0.1", port), 10) as s:
                return conversation(s, rcpt)

        assert b"\r\n" + NOT_IN_RCPTHOSTS.encode() in answer()
        newmrh(more, ["first.example", "second.example"])
        assert b"\r\n250 ok\r\n" in answer()
        more.unlink()
        assert b"\r\n" + NOT_IN_RCPTHOSTS.encode() in answer()
        more.write_bytes(b"\0" * 100)  # shorter than a header: no database
        assert b"\r\n" + CONTROLS_UNREADABLE.encode() in answer()
        with pytest.raises(CorruptError):
            p.in_rcpthosts("bob@second.example")
        newmrh(more, ["second.example"])
        assert b"\r\n250 ok\r\n" in answer()


def test_in_place_rewrite_never_reaches_the_copy(tmp_path: Path) -> None:
    """The database is read into a private copy: a file truncated in place
    under it changes nothing until it is whole again (no SIGBUS)."""
    more = tmp_path / "morercpthosts.cdb"
    newmrh(more, ["more.example"])
    p = policy(tmp_path, more)
    assert p.in_rcpthosts("a@more.example")
    with open(more, "r+b") as f:
        f.truncate(0)
        with pytest.raises(CorruptError):
            p.in_rcpthosts("a@more.example")
        newmrh(tmp_path / "new.cdb", ["more.example", "other.example"])
        f.write((tmp_path / "new.cdb").read_bytes())
    os.utime(more, ns=(1, 1))  # a new stamp even where the clock is coarse
    assert p.in_rcpthosts("a@other.example")


def test_missing_or_damaged_when_made(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        policy(tmp_path, tmp_path / "none.cdb")
    (tmp_path / "text").write_text("more.example\n")
    with pytest.raises(CorruptError):
        policy(tmp_path, tmp_path / "text")


@pytest.mark.parametrize(
    ("given", "says"),
    [("NONE", "No such file"), ("TEXT", "unable to read --morercpthosts")],
)
def test_relay_option(tmp_path: Path, given: str, says: str) -> None:
    (tmp_path / "text").write_text("more.example\n")
    path = tmp_path / ("none.cdb" if given == "NONE" else "text")
    done = run_relay(tmp_path, "--morercpthosts", str(path))
    assert (done.returncode, done.stdout) == (111, ""), done.stderr
    assert "Traceback" not in done.stderr and says in done.stderr, done.stderr
