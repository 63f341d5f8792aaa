"""pycdb.remotehost against the real tcpserver: for clients connecting
from different 127.0.0.x addresses to a dnsmasq that serves the scenarios
of issue 11 (tests/test_dns_oracle.py's zone: confirmed, forged,
dangling, mixed-case, several addresses, several PTR names, odd bytes,
numeric names, the root), the TCPREMOTEHOST that ``tcpserver -p`` and
``-P`` hand their child must be the one pycdb computes, blocking and
asyncio alike, with the same DNS questions asked in the same order; and
with a rules database, the rules' environment must be the one
``RuleSet.check`` gives for that name.

Failures are pycdb's own (faster than djbdns' 11 s and 59 s, bounded by
the timeout; tcpserver's recorded behaviour is no name either way), and
so are the cache, DNSCACHEIP and IPv6 (at the lookup level: the classic
tcpserver has no IPv6).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from dnsoracle import Dnsmasq, StubDns, TcpServer, Zone, require_dnsmasq
from helpers import ref
from rules_helpers import compile_rules
from test_dns_oracle import (
    CASES,
    CONFIRMED,
    HANG_A,
    HANG_PTR,
    IPV6_CASES,
    LONE,
    ODD_DOTTED,
    ODD_NAME,
    RULE_CASES,
    RULES,
    SERVFAIL_A,
    SERVFAIL_PTR,
    Case,
    scenario_zone,
)

from pycdb.remotehost import (
    Outcome,
    RemoteHost,
    RemoteHostResolver,
    dnscache_ips,
    remote_host,
    remote_host_async,
    todot,
)
from pycdb.rules import RuleSet

#: Short, so that the failure tests stay quick (the suite runs five times in CI).
SHORT = 1.0


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """DNS does not depend on the backend: once (the rules test names its
    backends itself)."""
    yield None


@pytest.fixture(scope="module")
def dns() -> Iterator[Dnsmasq]:
    with Dnsmasq(scenario_zone(), program=require_dnsmasq()) as server:
        yield server


@pytest.fixture(scope="module")
def servers(dns: Dnsmasq) -> Iterator[dict[bool, TcpServer]]:
    program = ref("tcpserver")
    with ExitStack() as stack:
        yield {
            paranoid: stack.enter_context(
                TcpServer(dns.address, paranoid=paranoid, program=program)
            )
            for paranoid in (True, False)
        }


def resolver(
    dns: Dnsmasq | StubDns, paranoid: bool = True, **options: object
) -> RemoteHostResolver:
    return RemoteHostResolver(
        paranoid=paranoid,
        nameservers=[dns.address],
        cache=False,
        **options,  # type: ignore[arg-type]
    )


def both(lookup: RemoteHostResolver, ip: str) -> RemoteHost:
    """The blocking and the asyncio lookup, which must agree."""
    blocking = lookup.lookup(ip)
    assert asyncio.run(lookup.lookup_async(ip)) == blocking
    return blocking


# ---- tcpserver -p and -P as the oracle ------------------------------------------------


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_same_name_as_tcpserver(servers: dict[bool, TcpServer], dns: Dnsmasq, case: Case) -> None:
    source, paranoid = case.source, case.paranoid
    served = servers[paranoid].connect(source)
    lookup = resolver(dns, paranoid)
    dns.take_queries()
    got = lookup.lookup(source)
    asks = tuple(q.qtype for q in dns.take_queries())
    assert got.host == served.host == case.host
    assert asks == case.asks  # PTR, then A only under -p
    assert asyncio.run(lookup.lookup_async(source)) == got
    assert got.ip == source and got.paranoid == paranoid
    if got.host is not None:
        assert got.outcome == (Outcome.CONFIRMED if paranoid else Outcome.UNVERIFIED)
        assert got.ptr == got.host
    elif got.ptr is None:
        assert got.outcome == Outcome.NO_PTR
    else:
        assert got.outcome == Outcome.NOT_CONFIRMED


def test_outcomes_name_the_reason(dns: Dnsmasq) -> None:
    p = resolver(dns)
    forged = both(p, "127.0.0.12")
    assert (forged.host, forged.ptr, forged.outcome) == (
        None,
        "mx.branch.example",
        Outcome.NOT_CONFIRMED,
    )
    assert not forged.temporary
    assert "mx.branch.example" in forged.detail and "127.0.0.12" in forged.detail
    unknown = both(p, "127.0.0.30")
    assert (unknown.host, unknown.ptr, unknown.outcome) == (None, None, Outcome.NO_PTR)
    assert unknown.as_dict() == {
        "host": None,
        "outcome": "no-ptr",
        "ptr": None,
        "paranoid": True,
        "temporary": False,
        "detail": unknown.detail,
    }


@pytest.mark.parametrize("backend_name", ["cffi", "pure"])
def test_rules_environment(dns: Dnsmasq, tmp_path: Path, backend_name: str) -> None:
    """With ``-x rules.cdb`` (from the real tcprules): the variables
    tcpserver hands its child are TCPREMOTEHOST as pycdb computes it and
    the rules' variables as ``RuleSet.check`` gives them for that name; a
    client tcpserver drops is one the decision denies.  The forged PTR
    relays under -P and not under -p."""
    from helpers import unavailable

    from pycdb import _backend

    if backend_name not in _backend.available():
        unavailable(f"the {backend_name} backend is not loaded")
    rules = tmp_path / "rules.cdb"
    compile_rules(RULES, rules)
    program = ref("tcpserver")
    own = {"PATH", "DNSCACHEIP", "PROTO", "TCPLOCALIP", "TCPLOCALPORT", "TCPLOCALHOST"}
    own |= {"TCPREMOTEIP", "TCPREMOTEPORT", "TCPREMOTEHOST"}
    with _backend.use(backend_name), RuleSet(rules, reload_interval=0) as ruleset:
        for paranoid in (True, False):
            lookup = resolver(dns, paranoid)
            with TcpServer(dns.address, paranoid=paranoid, program=program, rules=rules) as server:
                for (source, mode), _ in RULE_CASES.items():
                    if mode != paranoid:
                        continue
                    served = server.connect(source)
                    found = lookup.lookup(source)
                    decision = ruleset.check(source, found.host)
                    where = (source, paranoid, served.env, found, decision)
                    if not decision.allowed:
                        assert served.dropped, where
                        continue
                    assert served.env is not None, where
                    assert served.host == found.host, where
                    rules_env = {
                        k.decode(): v.decode()
                        for k, v in served.env.items()
                        if k.decode() not in own
                    }
                    assert rules_env == decision.env, where
    assert RULE_CASES[("127.0.0.12", False)] == b"suffix"  # the trap, as recorded


# ---- failures: never a hang --------------------------------------------------------------


def test_servfail_and_refused_are_temporary(dns: Dnsmasq) -> None:
    """SERVFAIL on the PTR, or on the A under -p: no name, as tcpserver
    (which gives up after about 11 s); pycdb gives up at once."""
    p = resolver(dns, timeout=5)
    for source in (SERVFAIL_A, SERVFAIL_PTR):
        start = time.monotonic()
        got = both(p, source)
        assert (got.host, got.outcome) == (None, Outcome.TEMPORARY_FAILURE), got
        assert got.temporary
        assert time.monotonic() - start < 4
    assert both(p, SERVFAIL_A).ptr == "sf.example"
    # Under -P the A query is never made: its failure does not matter.
    assert both(resolver(dns, False), SERVFAIL_A).host == "sf.example"
    with StubDns("refused") as refused, StubDns("servfail") as servfail:
        for stub in (refused, servfail):
            got = both(resolver(stub, timeout=5), LONE)
            assert (got.host, got.outcome) == (None, Outcome.TEMPORARY_FAILURE)


@pytest.mark.parametrize("form", ["blocking", "asyncio"])
def test_a_server_that_never_answers(form: str) -> None:
    """A black hole as the only DNS server: the lookup ends with
    Outcome.TIMEOUT after ``timeout`` seconds (tcpserver: no name after
    about 59 s), blocking and asyncio alike, and asks again meanwhile."""
    with StubDns("blackhole") as hole:
        lookup = resolver(hole, timeout=SHORT)
        start = time.monotonic()
        blocking = form == "blocking"
        got = lookup.lookup(LONE) if blocking else asyncio.run(lookup.lookup_async(LONE))
        took = time.monotonic() - start
    assert (got.host, got.outcome, got.ptr) == (None, Outcome.TIMEOUT, None)
    assert got.temporary
    assert SHORT - 0.05 <= took < SHORT + 1.0, took
    assert len(hole.queries()) >= 1


def test_timeout_covers_both_queries(dns: Dnsmasq) -> None:
    """Under -p the A query that is never answered ends the lookup at
    the timeout, with the PTR name known; an unanswered PTR likewise."""
    p = resolver(dns, timeout=SHORT)
    for source, ptr in ((HANG_A, "slow.example"), (HANG_PTR, None)):
        start = time.monotonic()
        got = both(p, source)
        assert (got.host, got.outcome, got.ptr) == (None, Outcome.TIMEOUT, ptr)
        assert time.monotonic() - start < 2 * (SHORT + 1.0)
    # Under -P only the PTR query is made, which answers at once.
    assert both(resolver(dns, False, timeout=SHORT), HANG_A).host == "slow.example"


def test_asyncio_lookups_run_side_by_side() -> None:
    """The asyncio form does not block the loop: ten lookups against a
    black hole take one timeout, not ten."""

    async def many(lookup: RemoteHostResolver) -> list[RemoteHost]:
        return await asyncio.gather(*(lookup.lookup_async(f"127.0.0.{i}") for i in range(60, 70)))

    with StubDns("blackhole") as hole:
        start = time.monotonic()
        results = asyncio.run(many(resolver(hole, timeout=SHORT)))
        took = time.monotonic() - start
    assert {r.outcome for r in results} == {Outcome.TIMEOUT}
    assert took < SHORT + 1.5, took


# ---- the cache -------------------------------------------------------------------------


def test_answers_are_cached_for_their_ttl() -> None:
    """A busy relay does not ask per connection: with a TTL of 2 s the
    second lookup asks nothing, a lookup after the TTL asks again; with
    cache=False every lookup asks."""
    zone = Zone().ptr(CONFIRMED, "mail.branch.example").addresses("mail.branch.example", CONFIRMED)
    with Dnsmasq(zone, program=require_dnsmasq(), ttl=2) as dns:
        cached = RemoteHostResolver(nameservers=[dns.address])
        dns.take_queries()
        assert cached.lookup(CONFIRMED).host == "mail.branch.example"
        assert [q.qtype for q in dns.take_queries()] == ["PTR", "A"]
        assert asyncio.run(cached.lookup_async(CONFIRMED)).host == "mail.branch.example"
        assert cached.lookup(CONFIRMED).host == "mail.branch.example"
        assert dns.take_queries() == []
        time.sleep(2.2)
        assert cached.lookup(CONFIRMED).host == "mail.branch.example"
        assert [q.qtype for q in dns.take_queries()] == ["PTR", "A"]
        fresh = resolver(dns)
        fresh.lookup(CONFIRMED)
        fresh.lookup(CONFIRMED)
        assert len(dns.take_queries()) == 4


# ---- DNSCACHEIP, as djbdns reads it ------------------------------------------------------


def test_dnscache_ips(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nnameserver 10.0.0.1\nnameserver\t0.0.0.0\nnameserver ::1\n"
        "  nameserver 10.0.0.9\nnameserver 300.1.2.3\n"
    )
    missing = str(tmp_path / "none")
    assert dnscache_ips({"DNSCACHEIP": "127.0.53.1"}, missing) == ["127.0.53.1"]
    # Several, dots between them skipped; numbers modulo 256; stops at junk.
    assert dnscache_ips({"DNSCACHEIP": "1.2.3.4.5.6.7.8..9.9.9.9 10.0.0.1"}, missing) == [
        "1.2.3.4",
        "5.6.7.8",
        "9.9.9.9",
    ]
    assert dnscache_ips({"DNSCACHEIP": "383.0.0.1"}, missing) == ["127.0.0.1"]
    assert len(dnscache_ips({"DNSCACHEIP": ".".join(["1.1.1.1"] * 20)}, missing)) == 16
    # Nothing usable in DNSCACHEIP: resolv.conf's IPv4 nameservers.
    for env in ({}, {"DNSCACHEIP": ""}, {"DNSCACHEIP": "localhost"}):
        assert dnscache_ips(env, str(conf)) == ["10.0.0.1", "127.0.0.1", "44.1.2.3"]
    assert dnscache_ips({}, missing) == ["127.0.0.1"]


def test_dnscache_ip_is_the_default(dns: Dnsmasq, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSCACHEIP", dns.address)
    assert RemoteHostResolver().nameservers == (dns.address,)
    assert remote_host(CONFIRMED).host == "mail.branch.example"
    assert asyncio.run(remote_host_async(CONFIRMED, paranoid=False)).host == ("mail.branch.example")


def test_arguments() -> None:
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout"):
            RemoteHostResolver(nameservers=["127.0.0.1"], timeout=bad)
    with pytest.raises(ValueError):
        RemoteHostResolver(nameservers=["dns.example"])
    with pytest.raises(ValueError, match="no DNS server"):
        RemoteHostResolver(nameservers=[])
    with pytest.raises(ValueError):
        RemoteHostResolver(nameservers=["127.0.0.1"]).lookup("mail.example")
    assert "-p" in repr(RemoteHostResolver(nameservers=["127.0.0.1"]))


# ---- the dotted form ---------------------------------------------------------------------


def test_todot() -> None:
    """djbdns' dns_domain_todot_cat, as tcpserver was seen to write names."""
    assert todot(ODD_NAME) == ODD_DOTTED
    assert todot(()) == "."
    assert todot((b"MiXeD", b"Branch", b"EXAMPLE")) == "mixed.branch.example"
    assert todot((b"\xc4\x80",)) == "\\304\\200"  # only ASCII A-Z is lower-cased
    assert todot((bytes(range(256)),)).isascii()


# ---- IPv6, at the lookup level -----------------------------------------------------------


@pytest.mark.parametrize("name", list(IPV6_CASES))
def test_ipv6_client(name: str) -> None:
    """An IPv6 client's name is confirmed by AAAA records (as Debian's
    ucspi-tcp-ipv6 tcpserver was seen to do, tests/test_dns_oracle.py):
    an A record holding the same bytes does not confirm it, and a name of
    sixteen numbers is neither read as the address nor looked up."""
    zone, paranoid_host, trusting_host = IPV6_CASES[name]
    with Dnsmasq(zone, program=require_dnsmasq()) as dns:
        for paranoid, host in ((True, paranoid_host), (False, trusting_host)):
            got = both(resolver(dns, paranoid), "::1")
            assert got.host == host, (paranoid, got)
            assert got.ip == "::1"
            asks = tuple(q.qtype for q in dns.take_queries())
            if paranoid and name not in ("unknown", "numeric"):
                assert asks == ("PTR", "AAAA") * 2  # blocking, then asyncio
            else:
                assert asks == ("PTR",) * 2


def test_ipv4_mapped_client_and_aaaa_for_ipv4() -> None:
    """An IPv4-mapped IPv6 address is its IPv4 client (TCPREMOTEIP in
    IPv4 form).  ``aaaa_for_ipv4`` is the ucspi-tcp-ipv6 tcpserver: an
    AAAA record holding the client's IPv4-mapped address confirms it,
    where the classic tcpserver (A only) does not."""
    mapped = "127.0.0.41"
    zone = (
        Zone()
        .ptr(CONFIRMED, "mail.example")
        .addresses("mail.example", CONFIRMED)
        .ptr(mapped, "mapped.example")
        .addresses("mapped.example", f"::ffff:{mapped}")
        .ptr("127.0.0.42", "127.0.0.42")
        .ptr("127.0.0.43", "127.0.0.43.99")
    )
    with Dnsmasq(zone, program=require_dnsmasq()) as dns:
        classic, six = resolver(dns), resolver(dns, aaaa_for_ipv4=True)
        got = both(classic, f"::ffff:{CONFIRMED}")
        assert (got.ip, got.host) == (CONFIRMED, "mail.example")
        assert both(classic, mapped).host is None
        assert both(six, mapped).host == "mapped.example"
        assert both(six, CONFIRMED).host == "mail.example"
        dns.take_queries()
        six.lookup(CONFIRMED)
        assert [q.qtype for q in dns.take_queries()] == ["PTR", "AAAA", "A"]
        # ucspi-tcp-ipv6's dns_ip6 reads a numeric name with ip4_scan first:
        # the whole name one address, anything after it a failure.
        assert both(six, "127.0.0.42").host == "127.0.0.42"
        assert both(six, "127.0.0.43").host is None
        assert both(classic, "127.0.0.43").host == "127.0.0.43.99"


@pytest.mark.parametrize("form", ["blocking", "asyncio"])
def test_the_timeout_is_kept_when_it_spans_several_tries(form: str) -> None:
    """A timeout longer than one try (2 s): dnspython sleeps between
    rounds of tries (0.1 s, doubling up to 2 s) and checked its lifetime
    only after the sleep, so the blocking lookup took up to 2 s more
    than ``timeout`` (11.6 s for the default 10 s, which is what
    ``pycdb check --lookup`` waited for an unreachable DNS server), and
    the asyncio one 0.5 s more.  Now each lookup ends within 0.25 s of
    its timeout."""
    timeout = 4.5
    with StubDns("blackhole", "127.0.0.1", 0) as hole:
        lookup = RemoteHostResolver(
            nameservers=[hole.address], port=hole.port, timeout=timeout, cache=False
        )
        start = time.monotonic()
        blocking = form == "blocking"
        got = lookup.lookup(LONE) if blocking else asyncio.run(lookup.lookup_async(LONE))
        took = time.monotonic() - start
    assert got.outcome == Outcome.TIMEOUT
    assert timeout - 0.05 <= took < timeout + 0.25, took
    assert len(hole.queries()) >= 3  # it kept asking meanwhile


def test_arguments_a_user_gets_wrong() -> None:
    """One address given as a string was read as a sequence of one-
    character servers ("'1' does not appear to be an IPv4 or IPv6
    address"); a port outside 1-65535 was accepted and made every lookup
    a silent temporary failure, like a DNS outage."""
    with pytest.raises(ValueError, match=r"a sequence of addresses, not one string: \['127"):
        RemoteHostResolver(nameservers="127.0.0.1")
    for port in (0, -1, 65536, 1 << 40):
        with pytest.raises(ValueError, match="port"):
            RemoteHostResolver(nameservers=["127.0.0.1"], port=port)
    with pytest.raises(ValueError, match="'dns.example' is no IP address"):
        RemoteHostResolver(nameservers=["127.0.0.1", "dns.example"])
