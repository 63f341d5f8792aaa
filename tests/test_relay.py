"""examples/relay.py and pycdb.integrations.aiosmtpd, end to end.

The relay runs as a process of its own against dnsmasq on loopback;
smtplib clients connect from different 127.0.0.x source addresses:

* the client whose PTR name is forward-confirmed under
  ``=.branch.example`` relays; the forged and the unnamed ones deliver
  only to rcpthosts, refused with qmail-smtpd's exact words (and under
  ``--no-paranoid`` the forger relays: the trap);
* a denied client is dropped before any greeting;
* RBLSMTPD's two forms give, byte for byte, the conversation Debian's
  rblsmtpd gives;
* RELAYCLIENT's value is appended to each recipient;
* a ``pycdb make`` while the relay runs changes the next connection's
  treatment;
* messages land in the Maildir with qmail-local's Return-Path: and
  Delivered-To: lines.

In process: behind a PROXY-protocol balancer the header's address is the
one checked, and the environment on the session is the one the real
tcpserver hands its child.
"""

from __future__ import annotations

import asyncio
import mailbox
import select
import smtplib
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dnsoracle import Dnsmasq, TcpServer, Zone, require_dnsmasq
from helpers import child_env, python, ref
from rules_helpers import compile_rules, pycdb_make

from pycdb.integrations.aiosmtpd import (
    NOT_IN_RCPTHOSTS,
    RelayPolicy,
    TcpRulesSession,
    rblsmtpd_reply,
    read_rcpthosts,
)
from pycdb.remotehost import RemoteHostResolver
from pycdb.rules import RuleSet

RELAY = Path(__file__).resolve().parent.parent / "examples" / "relay.py"

CONFIRMED = "127.0.0.11"  # PTR mail.branch.example, confirmed
FORGED = "127.0.0.12"  # PTR mx.branch.example, whose A is 127.0.0.99
UNNAMED = "127.0.0.30"  # no PTR
DENIED = "127.0.0.50"
RBL_451 = "127.0.0.51"
RBL_553 = "127.0.0.52"
APPENDS = "127.0.0.53"

RULES = b"""\
127.0.0.50:deny
127.0.0.51:allow,RBLSMTPD="try later"
127.0.0.52:allow,RBLSMTPD="-go away"
127.0.0.53:allow,RELAYCLIENT="@relay.example"
=.branch.example:allow,RELAYCLIENT="",RBLSMTPD=""
:allow
"""
RCPTHOSTS = b"# the domains we take mail for\nlocal.example\n.local.example  \n\n"
REFUSED = (553, NOT_IN_RCPTHOSTS[4:].encode())


def zone() -> Zone:
    return (
        Zone()
        .ptr(CONFIRMED, "Mail.Branch.example")
        .addresses("mail.branch.example", CONFIRMED)
        .ptr(FORGED, "mx.branch.example")
        .addresses("mx.branch.example", "127.0.0.99")
    )


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """The relay process runs the default backend; run once."""
    yield None


@pytest.fixture(scope="module")
def dns() -> Iterator[Dnsmasq]:
    with Dnsmasq(zone(), program=require_dnsmasq()) as server:
        yield server


class Relay:
    """examples/relay.py running in a process of its own."""

    def __init__(self, workdir: Path, dns: str, *, paranoid: bool = True) -> None:
        self.rules = workdir / "rules.cdb"
        self.maildir = workdir / "Maildir"
        rcpthosts = workdir / "rcpthosts"
        rcpthosts.write_bytes(RCPTHOSTS)
        compile_rules(RULES, self.rules)
        argv = python(str(RELAY), "--rules", str(self.rules), "--rcpthosts", str(rcpthosts))
        argv += ["--listen", "127.0.0.1:0", "--maildir", str(self.maildir)]
        argv += ["--dns-server", dns, "--paranoid" if paranoid else "--no-paranoid"]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env()
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"relay.py: listening on 127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"relay.py did not start: {line!r} {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
        self.port = int(line.rsplit(b":", 1)[1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def client(self, source: str) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, source_address=(source, 0), timeout=30)

    def messages(self) -> list[bytes]:
        box = mailbox.Maildir(str(self.maildir), factory=None, create=False)
        return sorted(box.get_bytes(key) for key in box.keys())  # noqa: SIM118 - iterating gives messages


@pytest.fixture(scope="module")
def relay(dns: Dnsmasq, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    server = Relay(tmp_path_factory.mktemp("relay"), dns.address)
    yield server
    server.stop()


def rcpt_codes(relay: Relay, source: str, *recipients: str) -> list[tuple[int, bytes]]:
    with relay.client(source) as smtp:
        smtp.ehlo("client.example")
        assert smtp.mail("alice@branch.example")[0] == 250
        return [smtp.rcpt(r) for r in recipients]


def test_confirmed_host_relays(relay: Relay) -> None:
    before = relay.messages()
    with relay.client(CONFIRMED) as smtp:
        refused = smtp.sendmail(
            "alice@branch.example", ["bob@far.example"], b"Subject: hi\r\n\r\nline\r\n"
        )
    assert refused == {}
    new = [m for m in relay.messages() if m not in before]
    assert new == [
        b"Return-Path: <alice@branch.example>\nDelivered-To: bob@far.example\nSubject: hi\n\nline\n"
    ]


@pytest.mark.parametrize("source", [FORGED, UNNAMED])
def test_forged_and_unnamed_deliver_only_to_rcpthosts(relay: Relay, source: str) -> None:
    codes = rcpt_codes(
        relay, source, "bob@far.example", "carol@local.example", "dave@Sub.Local.Example", "x@y"
    )
    assert codes[0] == REFUSED
    assert [c for c, _ in codes[1:3]] == [250, 250]
    assert codes[3] == REFUSED
    assert rcpt_codes(relay, source, "postmaster")[0][0] == 250  # no '@': qmail's own domain


def test_no_paranoid_believes_the_forger(dns: Dnsmasq, tmp_path: Path) -> None:
    """The trap: under tcpserver -P a PTR claiming mx.branch.example is
    enough to relay."""
    trusting = Relay(tmp_path, dns.address, paranoid=False)
    try:
        assert rcpt_codes(trusting, FORGED, "bob@far.example")[0][0] == 250
        assert rcpt_codes(trusting, UNNAMED, "bob@far.example")[0] == REFUSED
    finally:
        trusting.stop()


def test_denied_client_is_dropped_before_any_greeting(relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.port), 10, (DENIED, 0)) as s:
        assert s.recv(100) == b""
    with pytest.raises(smtplib.SMTPServerDisconnected):
        relay.client(DENIED)


def rblsmtpd_oracle(value: str, commands: bytes) -> bytes:
    """What Debian's rblsmtpd answers to ``commands`` with RBLSMTPD=value."""
    done = subprocess.run(
        [ref("rblsmtpd"), "true"],
        input=commands,
        env={"TCPREMOTEIP": "127.0.0.1", "RBLSMTPD": value},
        capture_output=True,
        timeout=30,
    )
    return done.stdout


CONVERSATION = (
    b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
    b"DATA\r\nnoop\r\nRSET\r\nHELP\r\nstarttls\r\n\r\nmail\r\nquit now\r\nNOOP\r\n"
)


@pytest.mark.parametrize(("source", "value"), [(RBL_451, "try later"), (RBL_553, "-go away")])
def test_rblsmtpd_conversation(relay: Relay, source: str, value: str) -> None:
    want = rblsmtpd_oracle(value, CONVERSATION)
    assert want.startswith(b"220 rblsmtpd.local\r\n")
    with socket.create_connection(("127.0.0.1", relay.port), 10, (source, 0)) as s:
        s.sendall(CONVERSATION)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    assert got == want
    code = b"553 go away" if value.startswith("-") else b"451 try later"
    assert code + b"\r\n" in got


def test_rblsmtpd_reply_matches_rblsmtpd() -> None:
    for value in ["-" + "x" * 250, "caf\u00e9 \x01", "-", "x"]:
        want = rblsmtpd_oracle(value, b"RCPT TO:<a@b>\r\n").split(b"\r\n")[1]
        assert rblsmtpd_reply(value).encode() == want, value


def test_relayclient_value_is_appended(relay: Relay) -> None:
    before = relay.messages()
    with relay.client(APPENDS) as smtp:
        smtp.sendmail("", ["bob@far.example"], b"\r\nbody\r\n")
    new = [m for m in relay.messages() if m not in before]
    assert new == [b"Return-Path: <>\nDelivered-To: bob@far.example@relay.example\n\nbody\n"]


def test_pycdb_make_changes_the_next_connection(dns: Dnsmasq, tmp_path: Path) -> None:
    server = Relay(tmp_path, dns.address)
    try:
        assert rcpt_codes(server, UNNAMED, "bob@far.example")[0] == REFUSED
        pycdb_make(
            RULES.replace(b":allow\n", b'127.0.0.30:allow,RELAYCLIENT=""\n:allow\n'), server.rules
        )
        assert rcpt_codes(server, UNNAMED, "bob@far.example")[0][0] == 250
        pycdb_make(RULES.replace(b"127.0.0.50:deny", b"127.0.0.30:deny"), server.rules)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            server.client(UNNAMED)
    finally:
        server.stop()


def test_quote2() -> None:
    """qmail's quote2, as the Return-Path: line uses it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("relay_example", RELAY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.quote2("alice@example.com") == "alice@example.com"
    assert module.quote2("") == ""
    assert module.quote2("a b@example.com") == '"a b"@example.com'
    assert module.quote2('a"b\\c@x') == '"a\\"b\\\\c"@x'
    assert module.quote2(".a@x") == '".a"@x' and module.quote2("a..b@x") == '"a..b"@x'
    assert module.quote2("@x") == '""@x' and module.quote2("plain") == "plain"
    assert module.qmail_local_lines("a\nb@x", "c@y") == (
        b'Return-Path: <"a\\_b"@x>\nDelivered-To: c@y\n'
    )


# ---- in process: PROXY protocol, the session, tcpserver's environment ---------------------


class Recorder:
    """A handler that keeps each session it saw at EHLO."""

    def __init__(self) -> None:
        self.sessions: list[TcpRulesSession] = []

    async def handle_EHLO(
        self,
        server: Any,
        session: TcpRulesSession,
        envelope: Any,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # a handle_EHLO hook does aiosmtpd's part
        self.sessions.append(session)
        return responses


@contextmanager
def serving(policy: RelayPolicy, handler: Any, **options: Any) -> Iterator[int]:
    """The policy's server on 127.0.0.1 in a thread of its own: its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        made = asyncio.run_coroutine_threadsafe(
            loop.create_server(
                lambda: policy.smtp(handler, hostname="relay.test", **options), "127.0.0.1", 0
            ),
            loop,
        ).result(10)
        yield made.sockets[0].getsockname()[1]
        made.close()
        asyncio.run_coroutine_threadsafe(made.wait_closed(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def policy_for(dns: Dnsmasq, rules: Path) -> RelayPolicy:
    return RelayPolicy(
        RuleSet(rules, reload_interval=0),
        read_rcpthosts_bytes(RCPTHOSTS, rules.parent),
        RemoteHostResolver(nameservers=[dns.address]),
        local_host="localhost",
    )


def read_rcpthosts_bytes(text: bytes, where: Path) -> frozenset[str]:
    path = where / "rcpthosts"
    path.write_bytes(text)
    hosts = read_rcpthosts(path)
    assert hosts == {"local.example", ".local.example"}
    return hosts


def test_proxy_protocol_checks_the_real_client(dns: Dnsmasq, tmp_path: Path) -> None:
    rules = tmp_path / "rules.cdb"
    compile_rules(RULES, rules)
    recorder = Recorder()
    with serving(
        policy_for(dns, rules), recorder, proxy_protocol_timeout=5, proxy_from=[CONFIRMED, FORGED]
    ) as port:

        def through_balancer(real: str, balancer: str) -> smtplib.SMTP:
            s = socket.create_connection(("127.0.0.1", port), 10, (balancer, 0))
            s.sendall(f"PROXY TCP4 {real} 127.0.0.1 40000 25\r\n".encode())
            smtp = smtplib.SMTP(timeout=10)
            smtp.sock = s
            smtp.file = None  # type: ignore[assignment]
            assert smtp.getreply()[0] == 220
            return smtp

        smtp = through_balancer(FORGED, CONFIRMED)  # a confirmed balancer, a forged client
        smtp.ehlo("x")
        smtp.mail("a@b.example")
        assert smtp.rcpt("bob@far.example") == REFUSED
        smtp.close()
        session = recorder.sessions[-1]
        assert session.client == FORGED and session.env["TCPREMOTEIP"] == FORGED
        assert session.env["TCPREMOTEPORT"] == "40000" and session.env["TCPLOCALPORT"] == "25"
        assert session.remote is not None and session.remote.ptr == "mx.branch.example"
        assert "TCPREMOTEHOST" not in session.env and session.relayclient is None

        smtp = through_balancer(CONFIRMED, FORGED)
        smtp.ehlo("x")
        smtp.mail("a@b.example")
        assert smtp.rcpt("bob@far.example")[0] == 250
        smtp.close()
        session = recorder.sessions[-1]
        assert session.env["TCPREMOTEHOST"] == "mail.branch.example"
        assert session.relayclient == "" and session.decision is not None
        assert session.decision.rule == "=.branch.example"

        with socket.create_connection(("127.0.0.1", port), 10, (CONFIRMED, 0)) as s:
            s.sendall(f"PROXY TCP4 {DENIED} 127.0.0.1 40000 25\r\n".encode())
            assert s.recv(100) == b""  # the real client is denied: no greeting
        with socket.create_connection(("127.0.0.1", port), 10, (CONFIRMED, 0)) as s:
            s.sendall(b"EHLO no.proxy.header\r\n")
            assert s.recv(100) == b""


def test_session_env_is_tcpservers(dns: Dnsmasq, tmp_path: Path) -> None:
    """The environment on the session is the one the real tcpserver -p
    -x hands its child (but the ports, and the variables of tcpserver's
    own environment)."""
    rules = tmp_path / "rules.cdb"
    compile_rules(RULES, rules)
    recorder = Recorder()
    with (
        serving(policy_for(dns, rules), recorder) as port,
        TcpServer(dns.address, paranoid=True, program=ref("tcpserver"), rules=rules) as real,
    ):
        for source in (CONFIRMED, FORGED, UNNAMED, APPENDS):
            served = real.connect(source)
            assert served.env is not None
            with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=10) as smtp:
                smtp.ehlo("x")
            session = recorder.sessions[-1]
            want = {
                k.decode(): v.decode()
                for k, v in served.env.items()
                if k not in (b"PATH", b"DNSCACHEIP", b"TCPREMOTEPORT", b"TCPLOCALPORT")
            }
            got = {
                k: v for k, v in session.env.items() if k not in ("TCPREMOTEPORT", "TCPLOCALPORT")
            }
            assert got == want, source
