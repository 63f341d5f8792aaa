"""End to end with the real server: ``tcpserver -x RULES.cdb`` running
``env -0``, clients connecting from several loopback addresses, and
RuleSet's prediction for each: a denied client is dropped, an allowed one
sees exactly the variables the decision lists (on top of tcpserver's
own).

tcpserver runs with -H -R (no DNS or ident lookups, so TCPREMOTEHOST and
TCPREMOTEINFO stay unset and the host and info are unknown, as
``check(ip)`` says) and -l0 (no DNS for the local name either).  It opens
the rules file for every connection, so replacing the file between
connections tests each database in turn against one server.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ref
from rules_helpers import pycdb_make, write_cdb

from pycdb.rules import RuleSet

#: What tcpserver itself sets (-H -R: no TCPREMOTEHOST, no TCPREMOTEINFO),
#: plus the PATH it was started with.
SERVER_VARIABLES = {
    b"PATH",
    b"PROTO",
    b"TCPLOCALIP",
    b"TCPLOCALPORT",
    b"TCPLOCALHOST",
    b"TCPREMOTEIP",
    b"TCPREMOTEPORT",
}


class Server:
    def __init__(self, rules: Path, port: int) -> None:
        self.rules = rules
        self.port = port

    def connect(self, source: str) -> dict[bytes, bytes] | None:
        """Connect from ``source``: the child's environment, or None when
        the connection was dropped without output."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.bind((source, 0))
            s.connect(("127.0.0.1", self.port))
            chunks = []
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except ConnectionResetError:
                pass
        out = b"".join(chunks)
        if not out:
            return None
        entries = out.split(b"\0")
        assert entries.pop() == b"", out  # env -0 ends every entry with NUL
        env = {}
        for entry in entries:
            name, eq, value = entry.partition(b"=")
            assert eq, entry
            env[name] = value
        return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    rules = tmp_path / "rules.cdb"
    pycdb_make(b":deny\n", rules)
    proc = subprocess.Popen(
        [
            ref("tcpserver"),
            "-1",
            "-R",
            "-H",
            "-l0",
            "-x",
            str(rules),
            "127.0.0.1",
            "0",
            "/usr/bin/env",
            "-0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "tcpserver did not print its port"
        line = proc.stdout.readline()
        assert line.strip().isdigit(), (line, proc.stderr.read() if proc.stderr else b"")
        yield Server(rules, int(line))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


def expect(server: Server, source: str) -> None:
    """The connection from ``source`` goes as RuleSet says."""
    decision = RuleSet(server.rules).check(source)
    got = server.connect(source)
    if not decision.allowed:
        assert got is None, (source, decision, got)
        return
    assert got is not None, (source, decision)
    wanted = {
        name.encode("utf-8", "surrogateescape"): value.encode("utf-8", "surrogateescape")
        for name, value in decision.env.items()
    }
    for name, value in wanted.items():
        assert got.get(name) == value, (source, name, got)
    assert set(got) <= SERVER_VARIABLES | set(wanted), (source, decision, got)
    if b"TCPREMOTEIP" not in wanted:
        assert got[b"TCPREMOTEIP"] == source.encode()


SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.1.7", "127.1.2.3"]


def test_compiled_rules(server: Server) -> None:
    """A database compiled from rules text."""
    pycdb_make(
        b"127.0.0.2:deny\n"
        b'127.0.0.3:allow,RELAYCLIENT="",GREETING="hello, world"\n'
        b'127.0.0.:allow,NET="loopback",RELAYCLIENT=""\n'
        b"127.0.1.:deny\n"
        b':allow,NET="elsewhere"\n',
        server.rules,
    )
    for source in SOURCES:
        expect(server, source)
    # Spot checks of the prediction itself.
    rules = RuleSet(server.rules)
    assert not rules.check("127.0.0.2").allowed
    assert rules.check("127.0.0.3").env == {"RELAYCLIENT": "", "GREETING": "hello, world"}
    assert server.connect("127.0.0.2") is None
    got = server.connect("127.0.0.3")
    assert got is not None and got[b"RELAYCLIENT"] == b"" and got[b"GREETING"] == b"hello, world"


@pytest.mark.parametrize(
    "data",
    [
        b"+A=1\0+NOEQ\0+A=2\0+B=x=y\0tail without NUL",  # later wins; no '=': nothing
        b"+A=1\0D\0+B=2\0",  # D anywhere denies
        b"Dxyz\0",  # any item starting with D
        b"D",  # not ended by a NUL: not an item
        b"\0\0+C=3\0X\0-A=1\0+D=\0",  # empty and unknown items
        b"+=empty name\0+E=\xff\xfe\0",  # empty name; bytes that are not UTF-8
        b"+TCPREMOTEIP=forged\0+PROTO=X\0",  # the rules' variables come last
        b"",
    ],
)
def test_handmade_data(server: Server, data: bytes) -> None:
    """Data items tcprules never writes, read by tcpserver and by RuleSet."""
    write_cdb(server.rules, [(b"127.0.0.1", data), (b"127.0.0.1", b"D\0"), (b"", b"D\0")])
    expect(server, "127.0.0.1")
    expect(server, "127.0.0.2")


def test_prefix_and_default(server: Server) -> None:
    write_cdb(server.rules, [(b"127.0.", b"+P=2\0"), (b"127.", b"D\0")])
    for source in SOURCES:
        expect(server, source)
    write_cdb(server.rules, [(b"10.", b"D\0")])  # nothing matches: allow
    expect(server, "127.0.0.1")
    got = server.connect("127.0.0.1")
    assert got is not None and set(got) <= SERVER_VARIABLES
    os.unlink(server.rules)  # no file and no -X: tcpserver drops
    assert server.connect("127.0.0.1") is None
