"""``pycdb check --lookup`` and ``--explain``.

--lookup: for clients of the issue-11 scenarios, ``pycdb check --lookup``
prints exactly what the real tcprulescheck prints when TCPREMOTEHOST is
what the real ``tcpserver -p``/``-P`` set for that client (dnsmasq on
loopback answering both); --json adds the host and the lookup's outcome;
a DNS server that never answers costs --timeout, not a hang.

--explain: every key in tcpserver's order, the deciding one and its rules
line, on databases from the real tcprules; the decision is always
RuleSet.check's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from dnsoracle import Dnsmasq, StubDns, TcpServer, require_dnsmasq
from helpers import child_env, ref, script
from rules_helpers import compile_rules, tcprulescheck, write_cdb
from test_check_cli import run
from test_dns_oracle import CASES, CONFIRMED, FORGED, LONE, RULES, UNKNOWN, scenario_zone

from pycdb._keyorder import rules_keys
from pycdb.rules import RuleSet
from pycdb.rules.explain import explain


@pytest.fixture(scope="module")
def dns() -> Iterator[Dnsmasq]:
    with Dnsmasq(scenario_zone(), program=require_dnsmasq()) as server:
        yield server


@pytest.fixture(scope="module")
def rules_cdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.cdb"
    compile_rules(RULES, path)
    return path


@pytest.fixture(scope="module")
def served(dns: Dnsmasq) -> dict[tuple[str, bool], bytes | None]:
    """(client, paranoid) -> the TCPREMOTEHOST the real tcpserver set."""
    program = ref("tcpserver")
    out: dict[tuple[str, bool], bytes | None] = {}
    with ExitStack() as stack:
        servers = {
            p: stack.enter_context(TcpServer(dns.address, paranoid=p, program=program))
            for p in (True, False)
        }
        for case in CASES.values():
            out[case.source, case.paranoid] = (
                servers[case.paranoid].connect(case.source).get("TCPREMOTEHOST")
            )
    return out


def test_lookup_output_is_tcprulescheck_with_tcpservers_host(
    dns: Dnsmasq,
    rules_cdb: Path,
    served: dict[tuple[str, bool], bytes | None],
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    for (source, paranoid), host in served.items():
        mode = "--paranoid" if paranoid else "--no-paranoid"
        args = ["check", "--lookup", mode, "--dns-server", dns.address, "--ip", source]
        code, out, err = run([*args, str(rules_cdb)], capfdbinary)
        want = tcprulescheck(rules_cdb, source.encode(), host, None)
        assert (code, out, err) == (0, want.stdout, b""), (source, paranoid, host)
        code, out, err = run([*args, "--json", str(rules_cdb)], capfdbinary)
        obj = json.loads(out)
        assert obj["host"] == (None if host is None else host.decode())
        assert obj["lookup"]["host"] == obj["host"]
        assert obj["lookup"]["paranoid"] is paranoid
        decision = RuleSet(rules_cdb).check(source, obj["host"])
        assert (obj["rule"], obj["env"]) == (decision.rule, decision.env)


def test_lookup_json_outcomes(
    dns: Dnsmasq, rules_cdb: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    def lookup(source: str, *more: str) -> dict[str, object]:
        args = ["check", "--lookup", "--json", "--dns-server", dns.address, *more]
        code, out, err = run([*args, "--ip", source, str(rules_cdb)], capfdbinary)
        assert (code, err) == (0, b"")
        obj: dict[str, object] = json.loads(out)
        assert list(obj) == ["rule", "allowed", "env", "data", "host", "lookup"]
        return obj

    forged = lookup(FORGED)
    assert forged["host"] is None
    assert forged["lookup"] == {
        "host": None,
        "outcome": "not-confirmed",
        "ptr": "mx.branch.example",
        "paranoid": True,
        "temporary": False,
        "detail": "PTR mx.branch.example, whose A records do not include 127.0.0.12",
    }
    assert forged["env"] == {"MATCH": "unnamed", "RBLSMTPD": "-no reverse DNS"}
    trap = lookup(FORGED, "--no-paranoid")
    assert trap["host"] == "mx.branch.example" and "RELAYCLIENT" in trap["env"]  # type: ignore[operator]
    # The last of --paranoid and --no-paranoid wins.
    assert lookup(FORGED, "--no-paranoid", "--paranoid")["host"] is None
    assert lookup(UNKNOWN)["lookup"]["outcome"] == "no-ptr"  # type: ignore[index]
    assert lookup(CONFIRMED)["lookup"]["outcome"] == "confirmed"  # type: ignore[index]


def test_lookup_asks_dnscacheip(
    dns: Dnsmasq, rules_cdb: Path, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Without --dns-server the installed command asks $DNSCACHEIP, as
    tcpserver does, and TCPREMOTEHOST in the environment is ignored."""
    env = child_env({"PATH": os.environ.get("PATH", ""), "DNSCACHEIP": dns.address})
    env["TCPREMOTEHOST"] = "mail.branch.example"
    done = subprocess_run(
        [script("pycdb"), "check", "--lookup", "--ip", FORGED, str(rules_cdb)], env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == tcprulescheck(rules_cdb, FORGED.encode(), None, None).stdout


def subprocess_run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, env=env, capture_output=True, timeout=60)


def test_lookup_times_out(rules_cdb: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """A DNS server that never answers: no name after --timeout, exit 0
    (tcpserver goes on without a name too)."""
    with StubDns("blackhole") as hole:
        start = time.monotonic()
        args = ["check", "--lookup", "--dns-server", hole.address, "--timeout", "1"]
        code, out, err = run([*args, "--json", "--ip", LONE, str(rules_cdb)], capfdbinary)
        took = time.monotonic() - start
    assert (code, err) == (0, b"")
    assert 0.95 <= took < 2.5, took
    obj = json.loads(out)
    assert (obj["host"], obj["lookup"]["outcome"], obj["lookup"]["temporary"]) == (
        None,
        "timeout",
        True,
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--paranoid"], b"--paranoid goes with --lookup"),
        (["--no-paranoid"], b"--no-paranoid goes with --lookup"),
        (["--dns-server", "127.0.0.1"], b"--dns-server goes with --lookup"),
        (["--timeout", "3"], b"--timeout goes with --lookup"),
        (["--rules", "x"], b"--rules goes with --explain"),
        (["--lookup", "--host", "x.example"], b"--host and --lookup exclude each other"),
        (["--lookup", "--dns-server", "dns.example"], b"--dns-server needs an IP address"),
        (["--lookup", "--timeout", "0"], b"--timeout needs a positive number"),
        (["--lookup", "--timeout", "soon"], b"--timeout needs a positive number"),
        (["--lookup", "--timeout", "nan"], b"--timeout needs a positive number"),
        (["--lookup", "--ip", "mail.example"], b"--lookup needs an IP address"),
        (["--lookup", "--timeout"], b"--timeout needs seconds"),
    ],
)
def test_usage(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], args: list[str], complaint: bytes
) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"")])
    code, out, err = run(["check", str(path), *args], capfdbinary)
    assert (code, out) == (100, b"")
    assert err.startswith(b"pycdb: fatal: ") and complaint in err, err


def test_help_names_the_options(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run(["check", "--help"], capfdbinary)
    for option in (b"--lookup", b"--no-paranoid", b"--dns-server", b"--timeout", b"--explain"):
        assert option in out


# ---- --explain ----------------------------------------------------------------------

CONN = (b"10.1.2.3", b"mx.mail.example.com", b"joe")


def test_explain_every_key_in_order(tmp_path: Path) -> None:
    """The table of docs/lookup-order.md §1: with the keys from row k on
    in the file, row k decides, the rows before have no record, the rows
    after are not reached (and say whether they have one)."""
    keys = list(rules_keys(*CONN))
    forms = ["info@ip", "info@=host", "ip", "=host", "ip prefix", "ip prefix", "ip prefix"]
    forms += ["=.suffix", "=.suffix", "=.suffix", "=", "default"]
    path = tmp_path / "rules.cdb"
    for k in range(len(keys)):
        write_cdb(path, [(x, b"+N=%d\0" % j) for j, x in enumerate(keys) if j >= k][::-1])
        got = explain(path, *CONN)
        assert [s.key for s in got.steps] == keys
        assert [s.form for s in got.steps] == forms
        assert [s.state for s in got.steps] == ["no record"] * k + ["decides"] + ["not reached"] * (
            len(keys) - k - 1
        )
        assert all(s.record is not None for s in got.steps[k:])
        with RuleSet(path) as rules:
            assert got.decision == rules.check(*CONN)
    write_cdb(path, [(b"unrelated", b"D\0")])
    got = explain(path, *CONN)
    assert got.decision.key is None and {s.state for s in got.steps} == {"no record"}
    assert "no key tcpserver tries has a record" in got.text()


def test_explain_of_a_huge_host_is_linear(tmp_path: Path) -> None:
    """A 200 KB host name of one-letter labels: tcpserver would try 100,000
    suffixes averaging 100 KB; the explanation builds and lists only the
    keys no longer than SHOWN (no longer key is in the file), says so,
    and decides as RuleSet does."""
    from pycdb.rules.explain import SHOWN

    host = b"a." * 100_000 + b"example.com"
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"=.example.com", b"+SUFFIX=1\0"), (b"", b"D\0")])
    got = explain(path, b"10.1.2.3", host, b"joe")
    assert got.left_out == SHOWN
    assert all(len(s.key) <= SHOWN for s in got.steps)
    assert len(got.steps) < 1000
    assert got.decision.env == {"SUFFIX": "1"}
    with RuleSet(path) as rules:
        assert got.decision == rules.check(b"10.1.2.3", host, b"joe")
    assert f"keys longer than {SHOWN} bytes are left out" in got.text()
    assert got.as_dict()["left_out"] == SHOWN
    assert explain(path, *CONN).left_out is None


def test_explain_takes_its_key_order_from_a_function(tmp_path: Path) -> None:
    """A dialect's key order plugs in: the walk follows the function."""
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"10.1.2.3", b"D\0"), (b"first", b"+A=1\0")])
    got = explain(path, *CONN, keys=lambda ip, host, info: [b"first", ip])
    assert [s.key for s in got.steps] == [b"first", b"10.1.2.3"]
    assert got.decision.env == {"A": "1"} and got.steps[1].state == "not reached"
    repeated = explain(path, b"1.2.3.", keys=lambda ip, host, info: [ip, ip])
    assert [s.form for s in repeated.steps] == ["ip", "again"]


RULES_TEXT = b"""\
# relays
10.8.0.2-254:allow,RELAYCLIENT=""
=mx1.example.com:allow,RELAYCLIENT="",RBLSMTPD=""
joe@10.1.2.3:allow,WHO="joe"
10.1.:deny
:allow
"""


def test_explain_names_the_rules_line(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    text = tmp_path / "tcp.smtp"
    text.write_bytes(RULES_TEXT)
    cdb = tmp_path / "tcp.smtp.cdb"
    compile_rules(RULES_TEXT, cdb)
    for ip, host, info, lineno in [
        (b"10.8.0.7", None, None, 2),
        (b"192.0.2.1", b"mx1.example.com", None, 3),
        (b"10.1.2.3", None, b"joe", 4),
        (b"10.1.9.9", None, None, 5),
        (b"192.0.2.9", None, None, 6),
    ]:
        got = explain(cdb, ip, host, info, rules=text)
        assert got.line is not None and got.line.lineno == lineno
        assert got.line.matches
        assert got.line.text == RULES_TEXT.split(b"\n")[lineno - 1]
        assert f"rules line: {text}:{lineno}: " in got.text()
    code, out, err = run(
        ["check", "--explain", "--rules", str(text), "--ip", "10.8.0.7", str(cdb)], capfdbinary
    )
    assert (code, err) == (0, b"")
    lines = out.decode().splitlines()
    assert lines[:3] == ["TCPREMOTEIP=10.8.0.7", "TCPREMOTEHOST unset", "TCPREMOTEINFO unset"]
    assert "   1  '10.8.0.7'  ip         DECIDES: allow,RELAYCLIENT=\"\"" in lines
    assert lines[-1] == f'rules line: {text}:2: 10.8.0.2-254:allow,RELAYCLIENT=""'
    code, out, _ = run(
        ["check", "--explain", "--json", "--rules", str(text), "--ip", "10.1.9.9", str(cdb)],
        capfdbinary,
    )
    obj = json.loads(out)
    assert obj["rule"] == "10.1." and obj["allowed"] is False
    assert obj["explain"]["line"] == {
        "file": str(text),
        "lineno": 5,
        "text": "10.1.:deny",
        "matches": True,
    }
    assert [k["state"] for k in obj["explain"]["keys"]] == [
        "no record",
        "no record",
        "decides",
        "not reached",
        "not reached",
    ]
    # The text changed since the database was compiled: said so.
    text.write_bytes(RULES_TEXT.replace(b"10.1.:deny", b"10.1.:allow"))
    got = explain(cdb, b"10.1.9.9", rules=text)
    assert got.line is not None and not got.line.matches
    assert "the database is stale" in got.text()
    text.write_bytes(b":allow\n")
    assert "none of" in explain(cdb, b"10.1.9.9", rules=text).text()
    text.write_bytes(b"bad line without allow:\n10.1.:deny\n")
    code, out, err = run(
        ["check", "--explain", "--rules", str(text), "--ip", "10.1.9.9", str(cdb)], capfdbinary
    )
    assert code == 100 and b":1: unable to parse this line" in err
    code, _, err = run(
        ["check", "--explain", "--rules", str(tmp_path / "none"), str(cdb)], capfdbinary
    )
    assert code == 111 and b"unable to read" in err and b"none: file does not exist" in err


def test_explain_with_lookup(
    dns: Dnsmasq, rules_cdb: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    args = ["check", "--explain", "--lookup", "--dns-server", dns.address, "--ip", CONFIRMED]
    code, out, err = run([*args, str(rules_cdb)], capfdbinary)
    assert (code, err) == (0, b"")
    assert b"TCPREMOTEHOST=mail.branch.example\n" in out
    assert b"'=.branch.example'" in out and b"DECIDES" in out


# ---- review: what a failed lookup tells the administrator -------------------------------


@pytest.mark.parametrize(
    ("mode", "outcome"), [("blackhole", b"timeout"), ("refused", b"temporary")]
)
def test_a_failed_lookup_is_said_on_stderr(
    rules_cdb: Path, capfdbinary: pytest.CaptureFixture[bytes], mode: str, outcome: bytes
) -> None:
    """The text output stays tcprulescheck's, so a DNS server that was
    unreachable, silent or refusing printed the no-name decision as if
    the client simply had no name, exit 0, with nothing said: an
    administrator asking "what does this client get?" was told a wrong
    story.  Now one warning line says the lookup failed (stdout and the
    exit code are unchanged; --json already says it in "lookup")."""
    with StubDns(mode) as stub:  # type: ignore[arg-type]
        args = ["check", "--lookup", "--dns-server", stub.address, "--timeout", "1"]
        code, out, err = run([*args, "--ip", LONE, str(rules_cdb)], capfdbinary)
    assert (code, out) == (0, tcprulescheck(rules_cdb, LONE.encode(), None, None).stdout)
    assert err.startswith(b"pycdb: warning: ") and err.count(b"\n") == 1, err
    assert LONE.encode() in err and outcome in err and b"no TCPREMOTEHOST" in err, err


def test_an_unreadable_database_is_named_before_any_lookup(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The lookup ran before the database was opened: a mistyped path
    was reported only after the DNS timeout (10 s by default)."""
    with StubDns("blackhole") as hole:
        start = time.monotonic()
        args = ["check", "--lookup", "--dns-server", hole.address, "--timeout", "5"]
        code, out, err = run([*args, "--ip", LONE, str(tmp_path / "missing.cdb")], capfdbinary)
        took = time.monotonic() - start
        assert hole.queries() == []
    assert (code, out) == (111, b"") and b"unable to read" in err, err
    assert took < 1, took


@pytest.mark.parametrize("text", ["\u0661", "1_0", "\uff15", " 5"])
def test_timeout_is_ascii_decimal(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], text: str
) -> None:
    """float() takes Arabic-Indic and full-width digits and underscores;
    a --timeout is written in ASCII, as --limit is (pycdb validate)."""
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"")])
    code, out, err = run(["check", str(path), "--lookup", "--timeout", text], capfdbinary)
    assert (code, out) == (100, b"") and b"--timeout needs a positive number" in err, err
