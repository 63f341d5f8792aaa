"""TCPREMOTEHOST as tcpserver computes it: the client's PTR name, and with
paranoid mode (``tcpserver -p``, this module's default) only when the
name's own address records lead back to the client.

Why here, below :mod:`pycdb.rules`: the name is an *input* to the rules
check (``RuleSet.check(ip, host, info)``), made before any key is tried,
exactly as tcpserver makes it before it calls ``rules()``.  It knows
nothing of rules, and the rules layer, the commands and the SMTP
integration all take it from here.

What tcpserver does (ucspi-tcp 0.88 ``tcpserver.c``, djbdns' resolver
library in it), each point held to the real program by
tests/test_remotehost.py with dnsmasq and ``tcpserver -p``/``-P`` as the
oracle (docs/lookup-order.md §2, §3):

* It asks for the PTR records of the client's reverse name and takes the
  **first PTR record of the answer** (``dns_name_packet``), even when a
  later one would be confirmed.  No PTR (NXDOMAIN, or an answer without
  one): no name.
* The name is written the way ``dns_domain_todot_cat`` writes it:
  ASCII ``A``-``Z`` lower-cased; letters, digits, ``-`` and ``_`` kept;
  every other byte of a label, a dot inside one included, as ``\\``
  and three octal digits; labels joined by ``.``; the root name as
  ``.`` (:func:`todot`).
* ``-P``: that name is TCPREMOTEHOST, unchecked.
* ``-p``: the name is kept only when one of its addresses is the
  client's.  Its addresses are found as djbdns' ``dns_ip4`` finds them:
  a name made only of digits and dots (and brackets) is read as a list
  of addresses without any query (each number taken modulo 256, whole
  groups of four numbers only, so ``127.0.0.23.99`` is ``127.0.0.23``
  and ``127.0.0`` is none); any other name is asked for its A records
  (AAAA for an IPv6 client), with the labels of the PTR name lower-cased.
* A query that fails (SERVFAIL, REFUSED, no answer in time): no name.

Deliberate differences, all in how long a failure takes: djbdns' resolver
tries a failing server three times over about 11 s and a silent one for
about 59 s (tests/test_dns_oracle.py records both); this module gives up
on the first SERVFAIL or REFUSED and never takes longer than ``timeout``
seconds in all (:data:`DEFAULT_TIMEOUT`; 0.15 s more at worst), asking
each server again every :data:`TRY_TIMEOUT` seconds meanwhile.  It also says *why* there is no
name (:class:`Outcome`), which tcpserver keeps to itself, so that a relay
can answer a temporary failure with a 4xx as Postfix and Exim do.

The queries go through dnspython's resolvers (the asyncio one for
:meth:`RemoteHostResolver.lookup_async`), with no EDNS and recursion
desired, as djbdns sends them, to the servers DNSCACHEIP names
(:func:`dnscache_ips`, as djbdns reads it) or to those given; answers are
cached for their TTL (dnspython's LRU cache, shared by both forms).
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import os
import re
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename

__all__ = [
    "DEFAULT_TIMEOUT",
    "Outcome",
    "RemoteHost",
    "RemoteHostResolver",
    "dnscache_ips",
    "remote_host",
    "remote_host_async",
    "tcpremoteip",
    "todot",
]

#: Seconds a whole lookup (the PTR query and, with paranoid mode, the
#: address query) may take before it ends with :attr:`Outcome.TIMEOUT`.
DEFAULT_TIMEOUT = 10.0
#: Seconds one try of one query waits for an answer before asking again.
TRY_TIMEOUT = 2.0
#: Answers kept in the cache at most (the least recently used go first).
CACHE_SIZE = 10_000
#: djbdns asks port 53, always.
DNS_PORT = 53

Address = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]


class Outcome(str, enum.Enum):
    """How a lookup ended.  The first two give a name; the others are why
    there is none."""

    #: Paranoid: the first PTR name's addresses include the client's.
    CONFIRMED = "confirmed"
    #: Not paranoid (``tcpserver -P``): the first PTR name, unchecked.
    UNVERIFIED = "unverified"
    #: The reverse name has no PTR record (NXDOMAIN, or no PTR in the answer).
    NO_PTR = "no-ptr"
    #: Paranoid: none of the PTR name's addresses is the client's (or it
    #: has none: NXDOMAIN, no A/AAAA record, a numeric name of other numbers).
    NOT_CONFIRMED = "not-confirmed"
    #: A query failed: SERVFAIL, REFUSED, or no server could be asked.
    TEMPORARY_FAILURE = "temporary-failure"
    #: The lookup took its whole ``timeout`` without an answer.
    TIMEOUT = "timeout"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RemoteHost:
    """The result of a lookup.

    ``ip`` is the client's address as tcpserver writes TCPREMOTEIP (an
    IPv4-mapped IPv6 address in its IPv4 form); ``host`` is what tcpserver
    would set TCPREMOTEHOST to, or None (unset); ``outcome`` says how the
    lookup ended; ``ptr`` is the first PTR name (written as TCPREMOTEHOST
    would be) whether or not it was kept, None when there was none;
    ``paranoid`` is the mode; ``detail`` one line for logs and people."""

    ip: str
    host: str | None
    outcome: Outcome
    ptr: str | None
    paranoid: bool
    detail: str

    @property
    def temporary(self) -> bool:
        """True when there is no name because of a failure that may not
        last (:attr:`Outcome.TEMPORARY_FAILURE`, :attr:`Outcome.TIMEOUT`)."""
        return self.outcome in (Outcome.TEMPORARY_FAILURE, Outcome.TIMEOUT)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``host``, ``outcome`` (its value), ``ptr``,
        ``paranoid``, ``temporary``, ``detail``."""
        return {
            "host": self.host,
            "outcome": self.outcome.value,
            "ptr": self.ptr,
            "paranoid": self.paranoid,
            "temporary": self.temporary,
            "detail": self.detail,
        }


# ---- names, as djbdns writes and reads them -----------------------------------------

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def todot(labels: Sequence[bytes]) -> str:
    """A DNS name (its labels, without the empty root label) as djbdns'
    ``dns_domain_todot_cat`` writes it, the form of TCPREMOTEHOST: ASCII
    capitals lower-cased, letters, digits, ``-`` and ``_`` as they are,
    every other byte as ``\\ooo`` (three octal digits), labels joined by
    ``.``; no labels (the root) is ``"."``.  The result is ASCII."""
    if not labels:
        return "."
    out = []
    for label in labels:
        part = []
        for byte in label.translate(_LOWER):
            part.append(chr(byte) if byte in _PLAIN else f"\\{byte:03o}")
        out.append("".join(part))
    return ".".join(out)


#: A name djbdns reads as addresses, not asks for (``dns_ip4``).
_NUMERIC = re.compile(r"[0-9.\[\]]*")
#: What ``ip4_scan`` reads at the start of a name (ucspi-tcp-ipv6's ``dns_ip6``).
_QUAD = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)")
_V4MAPPED = b"\0" * 10 + b"\xff\xff"


def _numeric_addresses(dotted: str, width: int) -> list[bytes] | None:
    """The addresses djbdns reads from a name made of digits, dots and
    brackets (``width`` 4: ``dns_ip4``; 16: ucspi-tcp-ipv6's ``dns_ip6``),
    or None for any other name, which is looked up instead.

    ``dns_ip4`` skips brackets, takes each dot-separated number modulo
    256 (an empty one as 0) as one byte and keeps whole groups of four.
    ``dns_ip6`` first reads an IPv4 address at the start of the name: the
    whole name is then that address, IPv4-mapped (``0.0.0.0``: ``::``),
    and anything after it makes the lookup fail (no address); otherwise it
    reads the bytes as ``dns_ip4`` does, sixteen to an address."""
    if not _NUMERIC.fullmatch(dotted):
        return None
    if width == 16:
        quad = _QUAD.match(dotted)
        if quad is not None:
            if quad.end() != len(dotted):
                return []
            ip4 = bytes(int(n) % 256 for n in quad.groups())
            return [bytes(16) if ip4 == bytes(4) else _V4MAPPED + ip4]
    codes = bytes(int(f) % 256 if f else 0 for f in re.sub(r"[\[\]]", "", dotted).split("."))
    codes = codes[: len(codes) & ~3]
    return [codes[i : i + width] for i in range(0, len(codes) - width + 1, width)]


# ---- DNSCACHEIP ------------------------------------------------------------------

_SCAN = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)")


def _ip4_scan(text: str, pos: int) -> tuple[str, int] | None:
    """djb's ``ip4_scan`` at ``pos``: four dot-separated numbers, each
    modulo 256, and where the scan ended; None when there are not four."""
    m = _SCAN.match(text, pos)
    if m is None:
        return None
    return ".".join(str(int(n) % 256) for n in m.groups()), m.end()


def dnscache_ips(
    environ: Mapping[str, str] | None = None, resolv_conf: str = "/etc/resolv.conf"
) -> list[str]:
    """The DNS servers djbdns' resolver asks (``dns_resolvconfip``), in
    order: the IPv4 addresses in ``$DNSCACHEIP`` (``environ``, by default
    the process's), read one after the other, dots between them skipped,
    up to 16, stopping at the first thing that is no address; if it names
    none, the ``nameserver`` lines of ``resolv_conf`` (IPv4 only,
    ``0.0.0.0`` read as ``127.0.0.1``, up to 16); if that names none
    (or cannot be read), ``127.0.0.1``.  Never raises."""
    env = os.environ if environ is None else environ
    found: list[str] = []
    text = env.get("DNSCACHEIP")
    if text:
        pos = 0
        while len(found) < 16:
            if text.startswith(".", pos):
                pos += 1
                continue
            scanned = _ip4_scan(text, pos)
            if scanned is None:
                break
            found.append(scanned[0])
            pos = scanned[1]
    if not found:
        try:
            with open(resolv_conf, "rb") as f:
                lines = f.read(64 << 10).split(b"\n")
        except OSError:
            lines = []
        for raw in lines:
            if len(found) >= 16:
                break
            if not raw.startswith((b"nameserver ", b"nameserver\t")):
                continue
            scanned = _ip4_scan(raw[10:].lstrip(b" \t").decode("latin-1"), 0)
            if scanned is not None:
                found.append("127.0.0.1" if scanned[0] == "0.0.0.0" else scanned[0])
    return found or ["127.0.0.1"]


# ---- the lookup, once for both forms ----------------------------------------------------


@dataclass(frozen=True)
class _Question:
    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType


@dataclass(frozen=True)
class _Reply:
    """A query's result: the answer section's records of the asked type
    (class IN) in packet order, or the outcome of a failure (NO_PTR
    stands for NXDOMAIN), with a line saying what happened."""

    records: tuple[Any, ...]
    failure: Outcome | None
    detail: str


def _client(ip: Address) -> tuple[str, bytes, int]:
    """(TCPREMOTEIP text, packed address, version) for ``ip``; an
    IPv4-mapped IPv6 address is its IPv4 client.  ValueError otherwise."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(address.packed)
    return str(address), address.packed, address.version


def tcpremoteip(ip: Address) -> str:
    """``ip`` written as tcpserver writes TCPREMOTEIP: an IPv4 address in
    dotted decimal (also when it came IPv4-mapped, ``::ffff:a.b.c.d``, as
    from a dual-stack socket), an IPv6 address compressed, without a
    scope.  ValueError when ``ip`` is no IP address."""
    return _client(ip)[0]


def _steps(
    ip: Address, paranoid: bool, aaaa_for_ipv4: bool
) -> Generator[_Question, _Reply, RemoteHost]:
    """The lookup, free of I/O: yields each question, receives its reply,
    returns the result.  Both forms drive it (:class:`RemoteHostResolver`)."""
    text, packed, version = _client(ip)

    def done(host: str | None, outcome: Outcome, ptr: str | None, detail: str) -> RemoteHost:
        return RemoteHost(text, host, outcome, ptr, paranoid, detail)

    reverse = dns.reversename.from_address(text)
    reply = yield _Question(reverse, dns.rdatatype.PTR)
    if reply.failure is not None:
        return done(None, reply.failure, None, reply.detail)
    if not reply.records:
        return done(None, Outcome.NO_PTR, None, f"{reverse} has no PTR record")
    labels = tuple(reply.records[0].target.labels)
    if labels and labels[-1] == b"":
        labels = labels[:-1]
    ptr = todot(labels)
    if not paranoid:
        return done(ptr, Outcome.UNVERIFIED, ptr, f"PTR {ptr}, not checked (not paranoid)")

    if version == 6 or aaaa_for_ipv4:
        wanted = packed if version == 6 else _V4MAPPED + packed
        width = 16
    else:
        wanted, width = packed, 4
    numeric = _numeric_addresses(ptr, width)
    if numeric is not None:
        if wanted in numeric:
            return done(ptr, Outcome.CONFIRMED, ptr, f"PTR {ptr}, read as addresses: {text}")
        return done(
            None, Outcome.NOT_CONFIRMED, ptr, f"PTR {ptr}, read as addresses, not including {text}"
        )
    name = dns.name.Name([label.translate(_LOWER) for label in labels] + [b""])
    if version == 6:
        kinds = [dns.rdatatype.AAAA]
    elif aaaa_for_ipv4:
        kinds = [dns.rdatatype.AAAA, dns.rdatatype.A]
    else:
        kinds = [dns.rdatatype.A]
    failures: list[_Reply] = []
    for kind in kinds:
        reply = yield _Question(name, kind)
        if reply.failure is not None:
            failures.append(reply)
            continue
        for record in reply.records:
            found = ipaddress.ip_address(record.address).packed
            if (_V4MAPPED + found if len(found) == 4 and width == 16 else found) == wanted:
                why = f"PTR {ptr}, whose addresses include {text}"
                return done(ptr, Outcome.CONFIRMED, ptr, why)
    # A failed query decides only when no other answered (it may have
    # held the address): NXDOMAIN is an answer, just an empty one.
    for reply in failures:
        if reply.failure in (Outcome.TEMPORARY_FAILURE, Outcome.TIMEOUT):
            return done(None, reply.failure, ptr, f"PTR {ptr}; {reply.detail}")
    kinds_text = "/".join(dns.rdatatype.to_text(k) for k in kinds)
    why = f"PTR {ptr}, whose {kinds_text} records do not include {text}"
    return done(None, Outcome.NOT_CONFIRMED, ptr, why)


def _records(answer: dns.resolver.Answer, rdtype: dns.rdatatype.RdataType) -> tuple[Any, ...]:
    """The records of ``rdtype`` (class IN) in the answer section, in
    packet order, whatever their owner (djbdns reads a CNAME's target's
    records the same way)."""
    response = answer.response
    return tuple(
        record
        for rrset in response.answer
        if rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN
        for record in rrset
    )


#: The lookup's own deadline has passed (no query is made then).
_OUT_OF_TIME = asyncio.TimeoutError()


def _failure(question: _Question, exc: BaseException) -> _Reply:
    """What an exception from dnspython's resolver means for the lookup."""
    asked = f"{question.name} {dns.rdatatype.to_text(question.rdtype)}"
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return _Reply((), Outcome.NO_PTR, f"{asked}: NXDOMAIN")
    if isinstance(exc, (dns.exception.Timeout, asyncio.TimeoutError)):
        return _Reply((), Outcome.TIMEOUT, f"{asked}: no answer in time")
    return _Reply((), Outcome.TEMPORARY_FAILURE, f"{asked}: {exc}")


def _is_ip(text: object) -> bool:
    try:
        ipaddress.ip_address(text)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


class RemoteHostResolver:
    """Computes TCPREMOTEHOST for clients: :meth:`lookup` blocks,
    :meth:`lookup_async` is a coroutine; both follow tcpserver (see the
    module docstring) and share one cache, so make one and keep it.

    ``paranoid`` (default True) is ``tcpserver -p``; False is ``-P``.
    ``nameservers`` are the DNS servers to ask, IPv4 or IPv6 addresses
    as text, in order; by default those ``$DNSCACHEIP`` names, read when
    the resolver is made (:func:`dnscache_ips`).  ``port`` is their port
    (djbdns: always 53).  ``timeout`` bounds a whole lookup, in seconds
    (the PTR query and the address query together; :data:`DEFAULT_TIMEOUT`).
    ``cache`` keeps answers for their TTL (dnspython's ``LRUCache`` of
    :data:`CACHE_SIZE` answers); False asks every time.  ``aaaa_for_ipv4``
    asks an IPv4 client's name for AAAA records before A records and
    accepts the client's IPv4-mapped address among them, as Debian's
    ucspi-tcp-ipv6 tcpserver does (its numeric names read as its
    ``dns_ip6`` reads them); the classic tcpserver asks A only.

    ValueError for a bad nameserver address (or one address given as a
    string, not in a sequence), a port outside 1-65535, or a timeout that
    is not a positive number."""

    def __init__(
        self,
        *,
        paranoid: bool = True,
        nameservers: Sequence[str] | None = None,
        port: int = DNS_PORT,
        timeout: float = DEFAULT_TIMEOUT,
        cache: bool = True,
        aaaa_for_ipv4: bool = False,
    ) -> None:
        timeout = float(timeout)
        if not 0 < timeout < float("inf"):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(nameservers, (str, bytes)):
            raise ValueError(
                f"nameservers is a sequence of addresses, not one string: [{nameservers!r}]"
            )
        servers = list(dnscache_ips() if nameservers is None else nameservers)
        if not servers:
            raise ValueError("no DNS server to ask")
        try:
            servers = [str(ipaddress.ip_address(server)) for server in servers]
        except ValueError:
            bad = next(x for x in servers if not _is_ip(x))
            raise ValueError(f"nameservers: {bad!r} is no IP address") from None
        if not (isinstance(port, int) and 0 < port < 65536):
            raise ValueError(f"port must be 1-65535, not {port!r}")
        self.paranoid = paranoid
        self.nameservers = tuple(servers)
        self.port = port
        self.timeout = timeout
        self.aaaa_for_ipv4 = aaaa_for_ipv4
        self.cache = dns.resolver.LRUCache(CACHE_SIZE) if cache else None
        self._sync = dns.resolver.Resolver(configure=False)
        self._async = dns.asyncresolver.Resolver(configure=False)
        for resolver in (self._sync, self._async):
            resolver.nameservers = servers
            resolver.port = port
            resolver.timeout = min(TRY_TIMEOUT, timeout)
            resolver.lifetime = timeout
            resolver.retry_servfail = False
            resolver.cache = self.cache

    def __repr__(self) -> str:
        mode = "-p" if self.paranoid else "-P"
        return (
            f"<RemoteHostResolver {mode} nameservers={list(self.nameservers)} "
            f"port={self.port} timeout={self.timeout}>"
        )

    def _round(self, left: float) -> float:
        """The lifetime of one call of dnspython's resolve(): one round of
        tries (each server once), or the time left if that is less.

        dnspython sleeps between rounds (0.1 s, doubling up to 2 s) and
        looks at its lifetime only after the sleep, so a lifetime spanning
        several rounds overran it by up to 2 s; one round a call, asked
        again while time is left, overruns it by 0.1 s at most."""
        return min(left, self._sync.timeout * len(self.nameservers))

    def lookup(self, ip: Address) -> RemoteHost:
        """TCPREMOTEHOST for a client at ``ip`` (text or an ``ipaddress``
        address), blocking for at most about ``timeout`` seconds (0.1 s
        more at worst).  Never raises for DNS trouble (that is an
        :class:`Outcome`); ValueError when ``ip`` is no IP address."""
        steps = _steps(ip, self.paranoid, self.aaaa_for_ipv4)
        deadline = time.monotonic() + self.timeout
        question = next(steps)
        while True:
            reply = self._ask(question, deadline)
            try:
                question = steps.send(reply)
            except StopIteration as stop:
                result: RemoteHost = stop.value
                return result

    def _ask(self, question: _Question, deadline: float) -> _Reply:
        """One question, blocking, in rounds until an answer, a failure
        or the deadline (time.monotonic())."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return _failure(question, _OUT_OF_TIME)
            try:
                answer = self._sync.resolve(
                    question.name,
                    question.rdtype,
                    raise_on_no_answer=False,
                    lifetime=self._round(left),
                    search=False,
                )
            except dns.resolver.LifetimeTimeout:
                continue  # a round without an answer: another, while time is left
            except (dns.exception.DNSException, OSError) as exc:
                return _failure(question, exc)
            return _Reply(_records(answer, question.rdtype), None, "")

    async def lookup_async(self, ip: Address) -> RemoteHost:
        """The asyncio form of :meth:`lookup` (dnspython's asyncio
        resolver): the same answers, never longer than about ``timeout``
        seconds (0.15 s more at worst; an ``asyncio`` timeout backs
        dnspython's own)."""
        steps = _steps(ip, self.paranoid, self.aaaa_for_ipv4)
        deadline = time.monotonic() + self.timeout
        question = next(steps)
        while True:
            reply = await self._ask_async(question, deadline)
            try:
                question = steps.send(reply)
            except StopIteration as stop:
                result: RemoteHost = stop.value
                return result

    async def _ask_async(self, question: _Question, deadline: float) -> _Reply:
        """:meth:`_ask`, with asyncio."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return _failure(question, _OUT_OF_TIME)
            lifetime = self._round(left)
            try:
                answer = await asyncio.wait_for(
                    self._async.resolve(
                        question.name,
                        question.rdtype,
                        raise_on_no_answer=False,
                        lifetime=lifetime,
                        search=False,
                    ),
                    lifetime + 0.15,
                )
            except (dns.resolver.LifetimeTimeout, asyncio.TimeoutError):
                continue
            except (dns.exception.DNSException, OSError) as exc:
                return _failure(question, exc)
            return _Reply(_records(answer, question.rdtype), None, "")


def remote_host(ip: Address, **options: Any) -> RemoteHost:
    """One blocking lookup with a resolver of its own (no cache kept
    between calls): ``RemoteHostResolver(**options).lookup(ip)``."""
    return RemoteHostResolver(**options).lookup(ip)


async def remote_host_async(ip: Address, **options: Any) -> RemoteHost:
    """One asyncio lookup with a resolver of its own:
    ``await RemoteHostResolver(**options).lookup_async(ip)``."""
    return await RemoteHostResolver(**options).lookup_async(ip)
