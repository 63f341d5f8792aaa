"""pycdb.integrations.aiosmtpd and examples/relay.py under attack and
misuse: what a hostile client, a hostile network or a mistaken
administrator can make of them.  Each test pins a fault found in review
(and fixed); tests/test_relay.py holds the behaviour as designed.
"""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dnsoracle import StubDns
from helpers import child_env, python
from rules_helpers import compile_rules
from test_relay import RELAY, rblsmtpd_oracle, serving

from pycdb.integrations.aiosmtpd import RelayPolicy, read_rcpthosts
from pycdb.remotehost import RemoteHost, RemoteHostResolver
from pycdb.rules import RuleSet


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """Nothing here depends on the backend: run once."""
    yield None


class NoHandler:
    """An aiosmtpd handler with no hooks."""


def read_all(s: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and
    how long that took; fails when it is still open after ``within``."""
    start = time.monotonic()
    s.settimeout(within)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pytest.fail(f"the server kept the connection open for {within} s; it sent {got!r}")
    return got, time.monotonic() - start


def rules_policy(tmp_path: Path, text: bytes, resolver: Any = None) -> RelayPolicy:
    compile_rules(text, tmp_path / "rules.cdb")
    return RelayPolicy(
        RuleSet(tmp_path / "rules.cdb", reload_interval=0), ["local.example"], resolver
    )


# ---- the end of the client's input ends the connection --------------------------------


def test_rblsmtpd_conversation_ends_at_the_end_of_input(tmp_path: Path) -> None:
    """rblsmtpd drops the connection when its input ends.  aiosmtpd
    cancels the connection's task when the client shuts down its side;
    the blocked conversation was then left open, unanswered, until
    aiosmtpd's idle timeout (300 s)."""
    policy = rules_policy(tmp_path, b':allow,RBLSMTPD="-go away"\n')
    commands = b"EHLO x\r\nRCPT TO:<a@b>\r\nNOOP\r\n"
    with (
        serving(policy, NoHandler()) as port,
        socket.create_connection(("127.0.0.1", port), 10) as s,
    ):
        s.sendall(commands)
        s.shutdown(socket.SHUT_WR)
        got, _ = read_all(s, 5)
    assert got == rblsmtpd_oracle("-go away", commands)


def test_end_of_input_during_the_lookup_ends_the_connection(tmp_path: Path) -> None:
    """A client that connects and shuts down its side while its name is
    being looked up (a DNS server that never answers) is disconnected at
    once, without a greeting, not held for aiosmtpd's idle timeout."""
    with StubDns("blackhole", "127.0.0.1", 0) as hole:
        resolver = RemoteHostResolver(nameservers=[hole.address], port=hole.port, timeout=30)
        policy = rules_policy(tmp_path, b":allow\n", resolver)
        with (
            serving(policy, NoHandler()) as port,
            socket.create_connection(("127.0.0.1", port), 10) as s,
        ):
            s.shutdown(socket.SHUT_WR)
            got, took = read_all(s, 5)
    assert got == b""
    assert took < 2


class BrokenResolver:
    """A resolver that fails in a way it should not."""

    async def lookup_async(self, ip: str) -> RemoteHost:
        raise RuntimeError("resolver bug")


def test_a_failing_resolver_drops_the_client(tmp_path: Path) -> None:
    """An unexpected exception before the greeting drops the client (as
    tcpserver drops a connection it cannot serve) instead of leaving it
    connected and unanswered."""
    policy = rules_policy(tmp_path, b":allow\n", BrokenResolver())
    with (
        serving(policy, NoHandler()) as port,
        socket.create_connection(("127.0.0.1", port), 10) as s,
    ):
        got, _ = read_all(s, 5)
    assert got == b""


# ---- the PROXY header is believed only from the balancer ----------------------------------

PROXY_RULES = b'127.0.0.11:allow,RELAYCLIENT=""\n127.0.0.50:deny\n:allow\n'


def proxied(port: int, source: str, real: str) -> socket.socket:
    """A connection from ``source`` that starts with a PROXY header
    claiming ``real`` as the client."""
    s = socket.create_connection(("127.0.0.1", port), 10, (source, 0))
    s.sendall(f"PROXY TCP4 {real} 127.0.0.1 40000 25\r\n".encode())
    return s


def conversation(s: socket.socket, commands: bytes) -> bytes:
    """What the server answers to ``commands``, which end with QUIT (or
    are refused by a drop): the input is not shut down, as aiosmtpd
    ends a conversation whose input ends."""
    s.sendall(commands)
    return read_all(s, 10)[0]


RELAY_ATTEMPT = b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<victim@far.example>\r\nQUIT\r\n"


def test_proxy_header_from_a_peer_that_is_not_the_balancer(tmp_path: Path) -> None:
    """With the PROXY protocol on, any client that could reach the port
    could claim any address in a PROXY header and be checked as that
    address: here 127.0.0.12 claims the relay client 127.0.0.11.  The
    header is now believed only from the balancers named in
    ``proxy_from``; any other peer is a direct client, checked by its own
    address, its "PROXY" line an unknown command."""
    policy = rules_policy(tmp_path, PROXY_RULES)
    with serving(policy, NoHandler(), proxy_protocol_timeout=5, proxy_from=["127.0.0.5"]) as port:
        with proxied(port, "127.0.0.12", "127.0.0.11") as s:
            got = conversation(s, RELAY_ATTEMPT)
        assert got.startswith(b"220 ")
        assert b'500 Error: command "PROXY" not recognized' in got
        assert b"553 sorry, that domain isn't in my list of allowed rcpthosts" in got
        # The balancer's header is believed, as before, both ways.
        with proxied(port, "127.0.0.5", "127.0.0.11") as s:
            got = conversation(s, RELAY_ATTEMPT)
        assert b"250 ok\r\n" in got and b"553" not in got and b"PROXY" not in got
        with proxied(port, "127.0.0.5", "127.0.0.50") as s:
            assert conversation(s, b"EHLO x\r\n") == b""  # denied: dropped, no greeting
        # A network names a pool of balancers.
    with serving(
        policy, NoHandler(), proxy_protocol_timeout=5, proxy_from=["127.0.0.0/29"]
    ) as port:
        with proxied(port, "127.0.0.6", "127.0.0.11") as s:
            assert b"250 ok\r\n" in conversation(s, RELAY_ATTEMPT)
        with proxied(port, "127.0.0.8", "127.0.0.11") as s:
            assert b"553 sorry" in conversation(s, RELAY_ATTEMPT)


def test_proxy_protocol_needs_the_balancers_named(tmp_path: Path) -> None:
    policy = rules_policy(tmp_path, PROXY_RULES)
    with pytest.raises(ValueError, match="proxy_from"):
        policy.smtp(NoHandler(), proxy_protocol_timeout=5)
    with pytest.raises(ValueError, match="proxy_protocol_timeout"):
        policy.smtp(NoHandler(), proxy_from=["127.0.0.1"])
    with pytest.raises(ValueError, match="balancer"):
        policy.smtp(NoHandler(), proxy_protocol_timeout=5, proxy_from=["lb.example"])
    with pytest.raises(ValueError, match="one string"):
        policy.smtp(NoHandler(), proxy_protocol_timeout=5, proxy_from="127.0.0.1")


# ---- rcpthosts: a file, never a FIFO or a device -------------------------------------------


def test_read_rcpthosts_refuses_a_fifo_and_a_device(tmp_path: Path) -> None:
    """read_rcpthosts opened its file with a blocking open() and read it
    whole: a FIFO with no writer hung the relay at start for ever, and
    /dev/zero filled its memory.  Now, as every pycdb reader: OSError."""
    fifo = tmp_path / "rcpthosts"
    os.mkfifo(fifo)
    result: list[object] = []

    def read() -> None:
        try:
            result.append(read_rcpthosts(fifo))
        except OSError as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():
        with open(fifo, "wb"):  # release the reader
            pass
        reader.join(5)
        pytest.fail("read_rcpthosts waited for a writer on a FIFO")
    assert isinstance(result[0], OSError) and "FIFO" in str(result[0]), result
    with pytest.raises(OSError, match="character device"):
        read_rcpthosts("/dev/zero")
    with pytest.raises(IsADirectoryError):
        read_rcpthosts(tmp_path)
    (tmp_path / "real").write_bytes(b"A.example\n# x\n\n.b.example \t\nc.example")
    assert read_rcpthosts(tmp_path / "real") == {"a.example", ".b.example", "c.example"}


# ---- examples/relay.py: errors are one line and djb's exit codes ---------------------------


def run_relay(tmp_path: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """examples/relay.py with good files but for ``args``, which override
    them (the last of an option wins in argparse); a prelude of Python
    runs first, in the same process."""
    rules = tmp_path / "rules.cdb"
    if not rules.exists():
        compile_rules(b":allow\n", rules)
        (tmp_path / "rcpthosts").write_text("local.example\n")
    argv = ["--rules", str(rules), "--rcpthosts", str(tmp_path / "rcpthosts")]
    argv += ["--maildir", str(tmp_path / "Maildir"), "--listen", "127.0.0.1:0", *args]
    code = f"{prelude}\nimport runpy, sys\nsys.argv = ['relay.py', *{argv!r}]\n"
    code += f"runpy.run_path({str(RELAY)!r}, run_name='__main__')"
    return subprocess.run(
        python("-c", code), capture_output=True, text=True, timeout=30, env=child_env()
    )


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["--listen", "127.0.0.1:99999"], 100, "port 0-65535"),
        (["--listen", "127.0.0.1:x"], 100, "HOST:PORT"),
        (["--listen", "127.0.0.1:\u0661"], 100, "HOST:PORT"),
        (["--dns-server", "dns.example"], 100, "--dns-server needs an IP address"),
        (["--dns-server", "999.1.1.1"], 100, "--dns-server needs an IP address"),
        (["--bogus"], 100, "unrecognized arguments"),
        (
            ["--rules", "/nonexistent/rules.cdb"],
            111,
            "--rules /nonexistent/rules.cdb: No such file",
        ),
        (["--rules", "/"], 111, "unable to read --rules /: Is a directory"),
        (
            ["--rules", "RULES_TEXT"],
            111,
            "not a cdb file: 7 bytes, shorter than the 2048-byte header (compile rules text first",
        ),
        (
            ["--rcpthosts", "/nonexistent/rcpthosts"],
            111,
            "--rcpthosts /nonexistent/rcpthosts: No such",
        ),
        (["--rcpthosts", "/dev/zero"], 111, "character device"),
        (["--maildir", "/etc/passwd"], 111, "unable to read --maildir /etc/passwd: not a Maildir"),
        (["--listen", "192.0.2.1:25"], 111, "unable to listen on 192.0.2.1:25"),
    ],
)
def test_relay_command_errors(tmp_path: Path, args: list[str], status: int, says: str) -> None:
    """Bad usage was a traceback (a port past 65535, a --dns-server that
    is no address) or argparse's exit 2; rules text given as --rules was
    a traceback; a Maildir that is a file was accepted, and every message
    then answered 500.  Now: one line, 100 for usage, 111 for a file or
    an address that cannot be had, before listening."""
    (tmp_path / "rules.txt").write_text(":allow\n")
    args = [str(tmp_path / "rules.txt") if a == "RULES_TEXT" else a for a in args]
    done = run_relay(tmp_path, *args)
    assert (done.returncode, done.stdout) == (status, ""), done.stderr
    assert "Traceback" not in done.stderr and says in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith("relay.py: "), done.stderr


def test_relay_without_aiosmtpd(tmp_path: Path) -> None:
    done = run_relay(tmp_path, prelude="import sys; sys.modules['aiosmtpd'] = None")
    assert done.returncode == 111 and "Traceback" not in done.stderr, done.stderr
    assert "pip install 'pycdb-toolkit[aiosmtpd]'" in done.stderr


def test_relay_answers_451_when_the_maildir_fails(tmp_path: Path) -> None:
    """A message the Maildir cannot take was answered 500 with the
    Python exception's text (the sender bounces the mail: it is lost).
    qmail-smtpd answers a failed queue with 451: the sender tries again."""
    compile_rules(b":allow\n", tmp_path / "rules.cdb")
    (tmp_path / "rcpthosts").write_text("local.example\n")
    argv = python(str(RELAY), "--rules", str(tmp_path / "rules.cdb"))
    argv += ["--rcpthosts", str(tmp_path / "rcpthosts"), "--maildir", str(tmp_path / "Maildir")]
    argv += ["--listen", "127.0.0.1:0", "--dns-server", "127.0.0.1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.rsplit(b":", 1)[1])
        (tmp_path / "Maildir" / "tmp").rmdir()
        (tmp_path / "Maildir" / "tmp").write_text("not a directory any more")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.ehlo("x")
            smtp.mail("a@b.example")
            smtp.rcpt("bob@local.example")
            code, text = smtp.data(b"Subject: x\r\n\r\nbody\r\n")
        assert (code, text) == (451, b"qq write error or disk full (#4.3.0)")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_rcpthosts_given_as_a_path_is_refused(tmp_path: Path) -> None:
    """RelayPolicy(rules, "/var/qmail/control/rcpthosts", resolver), the
    path where the domains belong, was taken as the set of its characters:
    every real domain refused, and a one-letter domain in the path
    accepted.  Now a ValueError naming read_rcpthosts."""
    compile_rules(b":allow\n", tmp_path / "rules.cdb")
    rules = RuleSet(tmp_path / "rules.cdb")
    with pytest.raises(ValueError, match="read_rcpthosts"):
        RelayPolicy(rules, "/var/qmail/control/rcpthosts", None)
    assert RelayPolicy(rules, ["Local.Example"], None).in_rcpthosts("a@LOCAL.example")


def test_proxy_unknown_leaves_the_balancer_as_the_client(tmp_path: Path) -> None:
    """The PROXY protocol says a receiver uses the connection's own
    endpoints for "PROXY UNKNOWN" (v1) and LOCAL (v2, health checks): the
    client checked is then the balancer itself, so rules must give the
    balancer's address no relay rights (documented on TcpRulesSMTP)."""
    policy = rules_policy(tmp_path, b'127.0.0.5:allow,RELAYCLIENT=""\n:allow\n')
    with serving(policy, NoHandler(), proxy_protocol_timeout=5, proxy_from=["127.0.0.5"]) as port:
        s = socket.create_connection(("127.0.0.1", port), 10, ("127.0.0.5", 0))
        with s:
            s.sendall(b"PROXY UNKNOWN\r\n")
            assert b"250 ok\r\n" in conversation(s, RELAY_ATTEMPT)


def test_rcpthosts_folds_ascii_case_only(tmp_path: Path) -> None:
    """qmail's constmap folds only A-Z.  str.lower() also folds, e.g.,
    the Kelvin sign U+212A into 'k', so 'x@\u212aey.example' was taken as
    a recipient at key.example, a domain it is not (qmail refuses it)."""
    compile_rules(b":allow\n", tmp_path / "rules.cdb")
    policy = RelayPolicy(RuleSet(tmp_path / "rules.cdb"), ["key.example", ".KEY.example"], None)
    assert policy.in_rcpthosts("x@KEY.Example") and policy.in_rcpthosts("x@mx.key.EXAMPLE")
    assert not policy.in_rcpthosts("x@\u212aey.example")
    assert not policy.in_rcpthosts("x@mx.\u212aey.example")
    assert RelayPolicy(RuleSet(tmp_path / "rules.cdb"), ["\u212aey.example"], None).rcpthosts == {
        "\u212aey.example"
    }
    (tmp_path / "rcpthosts").write_bytes("\u212aEY.example\n".encode())
    assert read_rcpthosts(tmp_path / "rcpthosts") == {"\u212aey.example"}


# ---- a temporary DNS failure need not bounce a relay client's mail --------------------------


def test_a_temporary_dns_failure_can_defer_instead_of_refusing(tmp_path: Path) -> None:
    """A host that relays by its confirmed name gets qmail's permanent 553
    for every far recipient while DNS fails, and its mail bounces.
    RemoteHost.temporary was there so a relay could answer 4xx instead,
    as Postfix and Exim do, but nothing let it: the handler's handle_RCPT
    never sees a refused recipient.  RelayPolicy(defer_on_dns_failure=True)
    answers 451 then (never accepting: no relaying on a failure)."""
    rules = b'=.branch.example:allow,RELAYCLIENT=""\n:allow\n'
    with StubDns("refused", "127.0.0.1", 0) as refused:
        resolver = RemoteHostResolver(nameservers=[refused.address], port=refused.port)
        for defer, want in ((False, b"553 sorry"), (True, b"451 ")):
            compile_rules(rules, tmp_path / "rules.cdb")
            policy = RelayPolicy(
                RuleSet(tmp_path / "rules.cdb", reload_interval=0),
                ["local.example"],
                resolver,
                defer_on_dns_failure=defer,
            )
            with (
                serving(policy, NoHandler()) as port,
                socket.create_connection(("127.0.0.1", port), 10) as s,
            ):
                commands = RELAY_ATTEMPT.replace(b"QUIT", b"RCPT TO:<me@local.example>\r\nQUIT")
                got = conversation(s, commands)
            assert b"\r\n" + want in got, got
            assert (b"\r\n451 " in got) is defer and (b"\r\n553 " in got) is not defer, got
            assert b"250 ok\r\n" in got  # the local recipient is taken either way


def test_relay_passes_defer_on_dns_failure(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("relay_example", RELAY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = ["--rules", "r", "--rcpthosts", "h", "--listen", "127.0.0.1:0", "--maildir", "m"]
    assert module.parse_args(base).defer_on_dns_failure is False
    assert module.parse_args([*base, "--defer-on-dns-failure"]).defer_on_dns_failure is True
