"""qmail's chain under tcpserver, for an aiosmtpd server: a rules
database applied at connection time (optional extra
``pycdb-toolkit[aiosmtpd]``).

A qmail SMTP service runs ``tcpserver -x tcp.smtp.cdb ... rblsmtpd
qmail-smtpd``.  :class:`TcpRulesSMTP` (an ``aiosmtpd.smtp.SMTP``) does
what each link does, in order, with a :class:`RelayPolicy`:

* **tcpserver**: the client's address (behind a PROXY-protocol balancer,
  the address the PROXY header gives, not the balancer's; the header is
  believed only from the balancers named, see :class:`TcpRulesSMTP`), its
  TCPREMOTEHOST computed as ``tcpserver -p`` (or ``-P``) computes it
  (:class:`pycdb.remotehost.RemoteHostResolver`; no resolver is ``-H``),
  and the rules' decision (``RuleSet.check``, no ident: ``-R``).  A
  denied client, or one whose check fails (a damaged or missing
  database), is disconnected before any greeting, as tcpserver closes
  the connection without running its program; so is one whose name
  lookup or check raises anything unexpected, and one that ends its
  input (shuts down its side) before the greeting.  The environment tcpserver
  would hand its child (PROTO, TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST,
  TCPREMOTEIP, TCPREMOTEPORT, TCPREMOTEHOST, then the rules' variables,
  which may override them) is on the session, with the decision and the
  lookup (:class:`TcpRulesSession`).
* **rblsmtpd**: ``RBLSMTPD`` set and not empty blocks the client with
  rblsmtpd's own limited conversation (``220 rblsmtpd.local``, 250 to
  HELO, EHLO, MAIL, RSET and NOOP, 221 to QUIT, and to every other
  command ``553`` and the text after a leading ``-``, or ``451`` and the
  whole text; at most 200 bytes of it, bytes outside 32..126 as ``?``;
  dropped after 60 seconds in all or at the end of the client's input),
  byte for byte what Debian's rblsmtpd sends (tests/test_relay.py and
  tests/test_relay_hardening.py compare them).  Empty or unset: no block (no RBL
  is consulted when it is unset, unlike rblsmtpd with ``-r``).
* **qmail-smtpd**: with ``RELAYCLIENT`` set, every recipient is
  accepted and the variable's value appended to it; without it only a
  recipient whose domain, or a suffix of it starting at a ``.``, is in
  rcpthosts (compared without ASCII case, as qmail's constmap does) or,
  failing that, in ``morercpthosts.cdb`` (qmail-newmrh's database), and the
  others are refused with qmail's ``553 sorry, that domain isn't in my
  list of allowed rcpthosts (#5.7.1)``.  A recipient without ``@`` is
  accepted (qmail adds its own domain).

Everything else is aiosmtpd and the handler given: its hooks run as
usual (its ``handle_RCPT`` only for recipients qmail-smtpd accepts, with
RELAYCLIENT appended; without one the recipient is added to the envelope
with ``250 ok``), and its ``handle_PROXY``, if any, is still asked about
the PROXY header.

The rules are anything with tcpserver's ``check(ip, host, info)`` that
answers with a decision's ``allowed``, ``env`` and ``rule``, above all a
:class:`pycdb.rules.RuleSet` (use ``reload_interval=0`` to take a new
database from the next connection on, as tcpserver does).

aiosmtpd has no hook between reading a PROXY header and the greeting, so
:class:`TcpRulesSMTP` overrides its ``_handle_client`` (calling it for
the conversation proper) and reads the PROXY header itself with
aiosmtpd's ``get_proxy``; hence the upper bound on aiosmtpd's version.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import Iterable
from typing import Any, Protocol, Union

from aiosmtpd.proxy_protocol import V2_CMD, ProxyData, get_proxy
from aiosmtpd.smtp import SMTP, Envelope, Session

from .._files import open_read
from ..errors import CorruptError
from ..reader import Reader
from ..remotehost import RemoteHost, RemoteHostResolver, tcpremoteip

__all__ = [
    "CONTROLS_UNREADABLE",
    "DNS_DEFERRED",
    "NOT_IN_RCPTHOSTS",
    "RBLSMTPD_GREETING",
    "Decision",
    "RelayPolicy",
    "Rules",
    "TcpRulesSMTP",
    "TcpRulesSession",
    "rblsmtpd_reply",
    "read_rcpthosts",
]

log = logging.getLogger("pycdb.integrations.aiosmtpd")

#: qmail-smtpd's refusal of a recipient outside rcpthosts (err_nogateway).
NOT_IN_RCPTHOSTS = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
#: qmail-smtpd's answer when morercpthosts.cdb cannot be read (die_control).
CONTROLS_UNREADABLE = "421 unable to read controls (#4.3.0)"
#: The answer instead of NOT_IN_RCPTHOSTS when the client's name could not
#: be looked up for now (RelayPolicy's ``defer_on_dns_failure``).
DNS_DEFERRED = "451 temporary failure looking up your host name, try again later (#4.4.3)"
#: rblsmtpd's greeting and its answer to HELO, EHLO, MAIL, RSET and NOOP.
RBLSMTPD_GREETING = "220 rblsmtpd.local"
_RBLSMTPD_OK = "250 rblsmtpd.local"
_RBLSMTPD_QUIT = "221 rblsmtpd.local"
_RBLSMTPD_OK_COMMANDS = (b"helo", b"ehlo", b"mail", b"rset", b"noop")
#: rblsmtpd's -t default: the blocked conversation is dropped after this long.
RBLSMTPD_TIMEOUT = 60.0


class Decision(Protocol):
    """What is read of a rules decision (:class:`pycdb.rules.Decision`)."""

    @property
    def rule(self) -> str | None: ...

    @property
    def allowed(self) -> bool: ...

    @property
    def env(self) -> dict[str, str]: ...


class Rules(Protocol):
    """tcpserver's rules check (:class:`pycdb.rules.RuleSet`)."""

    def check(self, ip: str, host: str | None = None, info: str | None = None) -> Decision: ...


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(text: str) -> str:
    """``text`` with A-Z lower-cased and nothing else, as qmail's
    ``case_diffb`` folds (str.lower() would also fold, e.g., the Kelvin
    sign U+212A into ``k``)."""
    return text.translate(_ASCII_LOWER)


def read_rcpthosts(path: str | os.PathLike[str]) -> frozenset[str]:
    """The domains of a qmail ``control/rcpthosts`` file, read as qmail's
    ``control_readfile`` reads it: one per line, trailing blanks removed,
    empty lines and lines starting with ``#`` skipped; ASCII letters
    lower-cased (qmail compares without ASCII case).  OSError when the file cannot be read (qmail
    without the file accepts every domain: refuse to start instead),
    for a directory, and for anything but a regular file (a FIFO, a
    device), which is refused at once as every pycdb reader refuses it."""
    fd, _ = open_read(path)
    with open(fd, "rb", closefd=True) as f:
        text = f.read()
    out = set()
    for line in text.split(b"\n"):
        line = line.rstrip(b" \t")
        if line and line[:1] != b"#":
            out.add(_ascii_lower(line.decode("utf-8", "surrogateescape")))
    return frozenset(out)


def rblsmtpd_reply(value: str) -> str:
    """rblsmtpd's answer for ``RBLSMTPD=value`` (not empty): ``553`` and
    the text after a leading ``-``, otherwise ``451`` and the text; the
    text cut at 200 bytes, each byte outside 32..126 written ``?``."""
    raw = value.encode("utf-8", "surrogateescape")
    code, text = ("553 ", raw[1:]) if raw[:1] == b"-" else ("451 ", raw)
    return code + "".join(chr(b) if 32 <= b <= 126 else "?" for b in text[:200])


class RelayPolicy:
    """The connection-time policy of :class:`TcpRulesSMTP`, made once and
    shared by every connection (its resolver's cache with them).

    ``rules``: the rules check (a :class:`pycdb.rules.RuleSet`).
    ``rcpthosts``: the domains qmail-smtpd accepts mail for without
    RELAYCLIENT, an iterable of str (:func:`read_rcpthosts` reads qmail's
    file; a path or one string is a ValueError); compared with A-Z lower-cased, a
    leading ``.`` covering the names under a domain.
    ``resolver``: computes TCPREMOTEHOST (paranoid unless made
    otherwise); None looks up no name, as ``tcpserver -H``.
    ``local_host``: TCPLOCALHOST (``tcpserver -l``), None to leave it
    unset.  ``rblsmtpd_timeout``: seconds before a blocked conversation
    is dropped (rblsmtpd's ``-t``).  ``defer_on_dns_failure``: when the
    client's name lookup failed for a reason that may pass
    (:attr:`pycdb.remotehost.RemoteHost.temporary`), answer a recipient
    outside rcpthosts :data:`DNS_DEFERRED` (451: try again later), as
    Postfix and Exim do, instead of qmail's permanent 553, so that a host
    relaying by its name does not have its mail bounced while DNS fails;
    it never accepts such a recipient.  False (the default) is qmail's
    behaviour.
    ``morercpthosts``: the path of qmail's ``control/morercpthosts.cdb``
    (made by qmail-newmrh: one key per domain, A-Z lower-cased, empty
    data), consulted as qmail's ``rcpthosts()`` does after rcpthosts;
    None (the default) for none.  It is read into a private copy when
    the policy is made (an OSError or :class:`pycdb.CorruptError` then),
    and again at the first recipient after the file is replaced, so a
    qmail-newmrh under the running server counts from the next
    recipient, as it does for qmail-smtpd's next connection; a file since
    removed counts as none (qmail-smtpd without it), one that cannot be
    read answers the recipient :data:`CONTROLS_UNREADABLE`."""

    def __init__(
        self,
        rules: Rules,
        rcpthosts: Iterable[str],
        resolver: RemoteHostResolver | None,
        *,
        local_host: str | None = None,
        rblsmtpd_timeout: float = RBLSMTPD_TIMEOUT,
        defer_on_dns_failure: bool = False,
        morercpthosts: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(rcpthosts, (str, bytes, os.PathLike)):
            raise ValueError(
                f"rcpthosts is the domains themselves, not a file or one string "
                f"({rcpthosts!r}): read_rcpthosts(path) reads qmail's control/rcpthosts"
            )
        self.rules = rules
        self.rcpthosts = frozenset(_ascii_lower(domain) for domain in rcpthosts)
        self.resolver = resolver
        self.local_host = local_host
        self.rblsmtpd_timeout = rblsmtpd_timeout
        self.defer_on_dns_failure = defer_on_dns_failure
        self.morercpthosts = None if morercpthosts is None else os.fspath(morercpthosts)
        self._more: Reader | None = None
        self._more_stamp: tuple[int, ...] | None = None
        if self.morercpthosts is not None:
            self._more_hosts()

    def in_rcpthosts(self, address: str) -> bool:
        """qmail's ``rcpthosts()``: True when ``address`` has no ``@``, or
        the domain after its last ``@`` (A-Z lower-cased), or a suffix of it
        starting at a ``.``, is in rcpthosts or, failing that, is a key of
        morercpthosts.cdb.  Raises OSError or :class:`pycdb.CorruptError`
        when morercpthosts.cdb cannot be read."""
        at = address.rfind("@")
        if at < 0:
            return True
        domain = _ascii_lower(address[at + 1 :])
        suffixes = [domain]
        dot = domain.find(".")
        while dot >= 0:
            suffixes.append(domain[dot:])
            dot = domain.find(".", dot + 1)
        if not self.rcpthosts.isdisjoint(suffixes):
            return True
        if self.morercpthosts is None:
            return False
        more = self._more_hosts()
        return more is not None and any(
            suffix.encode("utf-8", "surrogateescape") in more for suffix in suffixes
        )

    def _more_hosts(self) -> Reader | None:
        """morercpthosts.cdb as it is now: the copy read before, unless
        the file was replaced or changed since (None once it is gone)."""
        assert self.morercpthosts is not None
        try:
            st = os.stat(self.morercpthosts)
        except FileNotFoundError:
            if self._more_stamp is None:  # when the policy is made: say so
                raise
            self._more = None
            self._more_stamp = ()
            return None
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if stamp != self._more_stamp:
            self._more = Reader(self.morercpthosts, copy=True)
            self._more_stamp = stamp
        return self._more

    def smtp(self, handler: Any, **smtp_options: Any) -> TcpRulesSMTP:
        """A :class:`TcpRulesSMTP` for one connection (``loop.create_server(
        lambda: policy.smtp(handler), host, port)``)."""
        return TcpRulesSMTP(handler, self, **smtp_options)


class TcpRulesSession(Session):
    """aiosmtpd's session, with what tcpserver, rblsmtpd and qmail-smtpd
    know of the client: ``client`` (TCPREMOTEIP: the PROXY header's
    source when there is one), ``remote`` (the TCPREMOTEHOST lookup, None
    without a resolver), ``decision`` (the rules' decision), ``env`` (the
    environment tcpserver would hand its child), ``relayclient``
    (RELAYCLIENT's value, None when unset) and ``rblsmtpd`` (rblsmtpd's
    reply when RBLSMTPD blocks the client, else None)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.client: str | None = None
        self.remote: RemoteHost | None = None
        self.decision: Decision | None = None
        self.env: dict[str, str] = {}
        self.relayclient: str | None = None
        self.rblsmtpd: str | None = None

    def take_over(self, old: TcpRulesSession) -> None:
        """Keep what was decided at connection time (STARTTLS makes a new
        session: the client is the same)."""
        self.client, self.remote, self.decision = old.client, old.remote, old.decision
        self.env, self.relayclient, self.rblsmtpd = old.env, old.relayclient, old.rblsmtpd


def _endpoint(address: Any) -> tuple[str | None, int | None]:
    """(address text, port) of a socket name or None."""
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None, None


def tcpserver_env(
    remote: tuple[str, int | None],
    local: tuple[str | None, int | None],
    host: str | None,
    local_host: str | None,
    rules_env: dict[str, str],
) -> dict[str, str]:
    """The variables tcpserver sets for its child (tcpserver(1)), then
    the rules' (which may override them).  An IPv6 client gets the names
    Debian's ucspi-tcp-ipv6 sets too: PROTO=TCP6 and each TCP6* twin."""
    ip, port = remote
    local_ip, local_port = local
    six = ":" in ip
    env: dict[str, str] = {"PROTO": "TCP6" if six else "TCP"}
    pairs = [
        ("LOCALIP", local_ip),
        ("LOCALPORT", None if local_port is None else str(local_port)),
        ("LOCALHOST", local_host),
        ("REMOTEIP", ip),
        ("REMOTEPORT", None if port is None else str(port)),
        ("REMOTEHOST", host),
    ]
    for name, value in pairs:
        if value is not None:
            env["TCP" + name] = value
            if six:
                env["TCP6" + name] = value
    env.update(rules_env)
    return env


class _Chain:
    """The handler aiosmtpd sees: qmail-smtpd's RCPT in front of the
    given handler's, every other hook of the handler as it is."""

    def __init__(self, handler: Any, policy: RelayPolicy) -> None:
        self.handler = handler
        self.policy = policy
        for name in dir(handler):
            if name in ("handle_RCPT", "handle_PROXY"):
                continue
            if name.startswith(("handle_", "auth_")):
                setattr(self, name, getattr(handler, name))

    async def handle_RCPT(
        self,
        server: SMTP,
        session: TcpRulesSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        relayclient = session.relayclient
        if relayclient is None:
            try:
                inside = self.policy.in_rcpthosts(address)
            except (OSError, CorruptError) as exc:
                log.error("morercpthosts: %s", exc)
                return CONTROLS_UNREADABLE
            if not inside:
                remote = session.remote
                if self.policy.defer_on_dns_failure and remote is not None and remote.temporary:
                    return DNS_DEFERRED
                return NOT_IN_RCPTHOSTS
        else:
            address += relayclient
        inner = getattr(self.handler, "handle_RCPT", None)
        if inner is not None:
            status: str = await inner(server, session, envelope, address, rcpt_options)
            return status
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 ok"


Balancers = tuple[Union[ipaddress.IPv4Network, ipaddress.IPv6Network], ...]


def _balancers(proxy_from: Iterable[str]) -> Balancers:
    """``proxy_from`` as networks (an address is a network of one);
    ValueError for anything else, or for one string given whole."""
    if isinstance(proxy_from, (str, bytes)):
        raise ValueError(
            f"proxy_from is a list of addresses or networks, not one string: [{proxy_from!r}]"
        )
    networks = []
    for item in proxy_from:
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ValueError(
                f"proxy_from: {item!r} is no balancer address or network (IP or IP/len)"
            ) from None
    return tuple(networks)


class TcpRulesSMTP(SMTP):
    """aiosmtpd's SMTP server behind tcpserver's rules, rblsmtpd and
    qmail-smtpd's recipient check (see the module docstring), for one
    connection.  ``handler`` is an aiosmtpd handler; ``policy`` the
    shared :class:`RelayPolicy`; the other keyword arguments are
    aiosmtpd's, but for the PROXY protocol, which takes two together:
    ``proxy_protocol_timeout`` (seconds) makes a PROXY header, v1 or v2,
    required first from a peer in ``proxy_from`` (the balancers: IP
    addresses or networks, as text), and its source address the client.
    A peer outside ``proxy_from`` is a client like any other, checked by
    its own address (a PROXY line from it is an unknown command): whoever
    may send the header chooses the address that is checked.  As the
    PROXY protocol requires, a ``PROXY UNKNOWN`` (v1) or LOCAL (v2, health
    checks) header leaves the balancer's own address as the client: give
    the balancers' addresses no RELAYCLIENT in the rules.  ValueError
    when only one of the two is given, or for a bad one."""

    def __init__(
        self,
        handler: Any,
        policy: RelayPolicy,
        *,
        proxy_from: Iterable[str] | None = None,
        **smtp_options: Any,
    ) -> None:
        self.policy = policy
        self._proxy_wait: float | None = smtp_options.pop("proxy_protocol_timeout", None)
        if self._proxy_wait is not None and not self._proxy_wait > 0:
            raise ValueError("proxy_protocol_timeout must be > 0")
        if self._proxy_wait is not None and proxy_from is None:
            raise ValueError(
                "proxy_protocol_timeout needs proxy_from, the balancers whose PROXY header is "
                "believed: from any other peer, a header would choose the address checked"
            )
        if proxy_from is not None and self._proxy_wait is None:
            raise ValueError("proxy_from goes with proxy_protocol_timeout")
        self._balancers: Balancers = () if proxy_from is None else _balancers(proxy_from)
        super().__init__(_Chain(handler, policy), **smtp_options)

    def _from_balancer(self, address: str | None) -> bool:
        """Whether the peer at ``address`` is one whose PROXY header is
        believed (an IPv4-mapped address as its IPv4 form)."""
        try:
            peer = ipaddress.ip_address(tcpremoteip(address or ""))
        except ValueError:
            return False
        return any(peer in network for network in self._balancers)

    def _create_session(self) -> TcpRulesSession:
        return TcpRulesSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        old = self.session
        super().connection_made(transport)
        new = self.session
        if isinstance(old, TcpRulesSession) and isinstance(new, TcpRulesSession):
            new.take_over(old)

    async def _handle_client(self) -> None:
        transport = self.transport
        assert transport is not None
        try:
            greet = await self._before_greeting()
        except asyncio.CancelledError:
            # aiosmtpd cancels this task when the client closes its end
            # (eof_received) or the connection is lost: the connection is
            # over, as rblsmtpd and tcpserver end it at the end of input,
            # not left open until aiosmtpd's idle timeout.
            transport.close()
            raise
        except Exception:  # noqa: BLE001 - tcpserver drops a connection it cannot serve
            log.exception("dropping connection from %r", self.session and self.session.peer)
            transport.close()
            return
        if greet:
            await super()._handle_client()

    async def _before_greeting(self) -> bool:
        """tcpserver's and rblsmtpd's parts, before any greeting: False
        when the connection is over (dropped, or rblsmtpd's conversation
        held), True when qmail-smtpd's part (aiosmtpd's) is to follow."""
        session = self.session
        assert isinstance(session, TcpRulesSession) and self.transport is not None
        transport = self.transport
        remote = _endpoint(session.peer)
        local = _endpoint(transport.get_extra_info("sockname"))
        if self._proxy_wait is not None and self._from_balancer(remote[0]):
            proxy = await self._read_proxy()
            if proxy is None:
                transport.close()
                return False
            if proxy.src_addr is not None and proxy.command != V2_CMD.LOCAL:  # LOCAL: the peer
                remote = (str(proxy.src_addr), proxy.src_port)
                local = (str(proxy.dst_addr), proxy.dst_port)
        if not await self._admit(session, remote, local):
            transport.close()
            return False
        if session.rblsmtpd is not None:
            await self._rblsmtpd(session.rblsmtpd)
            transport.close()
            return False
        return True

    async def _read_proxy(self) -> ProxyData | None:
        """The PROXY header, or None when it is missing, bad, late or
        refused by the handler's ``handle_PROXY``."""
        assert self.session is not None and self._proxy_wait is not None
        try:
            proxy = await asyncio.wait_for(get_proxy(self._reader), self._proxy_wait)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return None
        self.session.proxy_data = proxy
        if not proxy:
            log.warning("%r: invalid PROXY header: %s", self.session.peer, proxy.error)
            return None
        hook = getattr(self.event_handler.handler, "handle_PROXY", None)
        if hook is not None and not await hook(self, self.session, self.envelope, proxy):
            return None
        return proxy

    async def _admit(
        self,
        session: TcpRulesSession,
        remote: tuple[str | None, int | None],
        local: tuple[str | None, int | None],
    ) -> bool:
        """tcpserver's part: the client's name and the rules' decision, on
        the session; False when the client is to be dropped."""
        policy = self.policy
        address, port = remote
        try:
            ip = tcpremoteip(address or "")
        except ValueError:
            log.warning("dropping connection: no IP address for the client (%r)", address)
            return False
        session.client = ip
        host = None
        if policy.resolver is not None:
            session.remote = await policy.resolver.lookup_async(ip)
            host = session.remote.host
        try:
            decision = policy.rules.check(ip, host)
        except Exception as exc:  # noqa: BLE001 - tcpserver drops on any failure to read
            log.warning("dropping connection from %s: unable to check the rules: %s", ip, exc)
            return False
        session.decision = decision
        session.env = tcpserver_env((ip, port), local, host, policy.local_host, decision.env)
        if not decision.allowed:
            log.info("%s: denied by rule %r", ip, decision.rule)
            return False
        session.relayclient = session.env.get("RELAYCLIENT")
        block = session.env.get("RBLSMTPD")
        session.rblsmtpd = rblsmtpd_reply(block) if block else None
        return True

    async def _rblsmtpd(self, reply: str) -> None:
        """rblsmtpd's limited conversation, until QUIT, the end of the
        input or the timeout."""
        assert self.session is not None
        log.info("%s: rblsmtpd: %s", self.session.client, reply)  # type: ignore[attr-defined]
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(self._rblsmtpd_commands(reply), self.policy.rblsmtpd_timeout)

    async def _rblsmtpd_commands(self, reply: str) -> None:
        await self.push(RBLSMTPD_GREETING)
        reader = self._reader
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return  # the end of the input (a last line without \n is no command)
            except asyncio.LimitOverrunError as exc:
                line = await reader.readexactly(
                    exc.consumed
                )  # a long line: its start is the command
                while True:
                    try:
                        await reader.readuntil(b"\n")
                        break
                    except asyncio.LimitOverrunError as more:
                        await reader.readexactly(more.consumed)
            command = line.rstrip(b"\n")
            if command.endswith(b"\r"):
                command = command[:-1]
            verb = command.split(b" ", 1)[0].lower()
            if verb == b"quit":
                await self.push(_RBLSMTPD_QUIT)
                return
            await self.push(_RBLSMTPD_OK if verb in _RBLSMTPD_OK_COMMANDS else reply)
