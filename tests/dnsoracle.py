"""The oracle for TCPREMOTEHOST: the real tcpserver asking a real DNS server.

tcpserver (ucspi-tcp) sets TCPREMOTEHOST from the client's PTR record,
and with -p (paranoid) keeps it only when the name's A records lead back
to the client.  To prove a reimplementation equal to it, this module
starts, on loopback only:

- ``Dnsmasq``: dnsmasq serving exactly the records of a ``Zone`` (PTR, A,
  AAAA, written as raw ``dns-rr`` records so case and odd bytes survive),
  NXDOMAIN for every other name, no upstream, no /etc/hosts, no
  /etc/resolv.conf; names given to ``Zone.fail`` answer SERVFAIL and
  names given to ``Zone.hang`` are never answered (both forwarded to a
  ``StubDns`` of its own);
- ``StubDns``: a Python DNS server on UDP that never answers
  (``"blackhole"``) or answers every query SERVFAIL or REFUSED, usable on
  its own as DNSCACHEIP for timeout tests;
- ``TcpServer``: the real tcpserver (-p or -P, -l localhost, -R unless
  ident is wanted, -x RULES.cdb optionally) with DNSCACHEIP set, whose
  child is ``env -0``;
- ``connect``: a client bound to a given 127.0.0.x (or ::1) source
  address, returning the environment tcpserver gave its child.

djb's resolver always asks port 53 of $DNSCACHEIP, so the DNS servers
listen on port 53 of a free address in 127.0.53.0/24 (never 127.0.0.53
or 127.0.0.54, where systemd-resolved may listen, and never the clients'
127.0.0.0/24).  Binding port 53 needs root (or CAP_NET_BIND_SERVICE).

Everything is a context manager that kills what it started and removes
its temporary files, also when the test fails; every wait is bounded.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Union

import pytest
from helpers import STRICT, UCSPI_TCP_IPV6, ref

#: A DNS name: dotted text (str or bytes, split at every dot) or its
#: labels (to put a dot or any other byte inside a label).  The empty name
#: and "." are the root.
NameLike = Union[str, bytes, Sequence[bytes]]

#: Where the DNS servers listen: port 53 of some 127.0.53.x.
DNS_BLOCK = "127.0.53."
DNS_PORT = 53

#: Where tcpserver listens unless told otherwise.
SERVER_IP = "127.0.0.1"

T_A = 1
T_PTR = 12
T_AAAA = 28

RCODE_NOERROR = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5

#: Bytes dnsmasq's configuration takes literally in an owner name.
_OWNER_LABEL = re.compile(rb"[A-Za-z0-9_ -]{1,63}")

#: The name dnsmasq is asked for until it answers (NXDOMAIN).
_READY_NAME = "dnsoracle-ready.invalid"

_STOP_WAIT = 10.0


# ---- names and records ---------------------------------------------------------


def labels(name: NameLike) -> tuple[bytes, ...]:
    """The labels of ``name`` (one final dot is allowed), checked against
    DNS's limits: 1 to 63 bytes a label, 255 bytes in all."""
    if isinstance(name, str):
        name = name.encode("ascii")
    if isinstance(name, bytes):
        dotted = name[:-1] if name.endswith(b".") else name
        parts = tuple(dotted.split(b".")) if dotted else ()
    else:
        parts = tuple(bytes(part) for part in name)
    for part in parts:
        if not 1 <= len(part) <= 63:
            raise ValueError(f"label of {len(part)} bytes in {name!r}")
    if sum(len(part) + 1 for part in parts) + 1 > 255:
        raise ValueError(f"name longer than 255 bytes: {name!r}")
    return parts


def wire_name(name: NameLike) -> bytes:
    """``name`` in DNS wire format (length-prefixed labels, then a zero)."""
    return b"".join(bytes([len(part)]) + part for part in labels(name)) + b"\0"


def reverse_name(ip: str) -> str:
    """The in-addr.arpa or ip6.arpa name whose PTR records name ``ip``."""
    return ipaddress.ip_address(ip).reverse_pointer


def _owner(name: str) -> str:
    """``name`` as a dnsmasq owner name (dnsmasq reads those literally:
    no escapes, no dots inside labels, no bytes outside ASCII)."""
    for part in labels(name):
        if not _OWNER_LABEL.fullmatch(part):
            raise ValueError(f"dnsmasq cannot serve records owned by {name!r}")
    return name.strip(".")


@dataclass(frozen=True)
class Record:
    """One resource record as dnsmasq's ``dns-rr`` serves it."""

    owner: str
    rtype: int
    rdata: bytes

    def config(self) -> str:
        return f"dns-rr={self.owner},{self.rtype},{self.rdata.hex().upper()}"


@dataclass
class Zone:
    """What the DNS server knows: records, and names that fail or hang.

    Each ``ptr`` and ``addresses`` call adds records; several records of
    one name and type are answered in the order they were added.  Every
    name without a record is NXDOMAIN (dnsmasq's ``local=/#/``; note that
    dnsmasq also answers NXDOMAIN, not NODATA, for the missing type of a
    name that has records of another type).
    """

    records: list[Record] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    hanging: list[str] = field(default_factory=list)

    def ptr(self, ip: str, *names: NameLike) -> Zone:
        """PTR records for ``ip`` naming ``names`` exactly (case, bytes)."""
        owner = reverse_name(ip)
        self.records.extend(Record(owner, T_PTR, wire_name(name)) for name in names)
        return self

    def addresses(self, name: str, *ips: str) -> Zone:
        """A records (IPv4 ``ips``) and AAAA records (IPv6) for ``name``."""
        owner = _owner(name)
        for ip in ips:
            address = ipaddress.ip_address(ip)
            rtype = T_A if address.version == 4 else T_AAAA
            self.records.append(Record(owner, rtype, address.packed))
        return self

    def fail(self, name: str) -> Zone:
        """Queries for ``name`` and names below it answer SERVFAIL."""
        self.failing.append(_owner(name))
        return self

    def hang(self, name: str) -> Zone:
        """Queries for ``name`` and names below it are never answered."""
        self.hanging.append(_owner(name))
        return self

    def config_lines(self) -> list[str]:
        """The records as dnsmasq configuration.  dnsmasq answers the
        records of one name and type last-configured first, so each such
        group is written in reverse."""
        groups: dict[tuple[str, int], list[Record]] = {}
        for record in self.records:
            groups.setdefault((record.owner.lower(), record.rtype), []).append(record)
        return [record.config() for group in groups.values() for record in reversed(group)]


# ---- a small DNS client (readiness checks and the harness's own tests) --------------


@dataclass(frozen=True)
class Answer:
    """A DNS response: its rcode and its answer records as (type, rdata),
    in packet order; a PTR's rdata is the name's labels."""

    rcode: int
    records: tuple[tuple[int, bytes | tuple[bytes, ...]], ...]


def _read_name(packet: bytes, pos: int) -> tuple[tuple[bytes, ...], int]:
    """The name at ``pos`` (following compression pointers) and the
    position after it."""
    parts: list[bytes] = []
    end: int | None = None
    for _ in range(128):
        length = packet[pos]
        if length >= 0xC0:
            if end is None:
                end = pos + 2
            pos = (length & 0x3F) << 8 | packet[pos + 1]
            continue
        pos += 1
        if length == 0:
            return tuple(parts), pos if end is None else end
        parts.append(packet[pos : pos + length])
        pos += length
    raise ValueError("compression loop")


def _question(packet: bytes) -> tuple[bytes, int, int]:
    """The first question of ``packet``: (wire name, qtype, qclass)."""
    _, end = _read_name(packet, 12)
    qtype, qclass = struct.unpack(">HH", packet[end : end + 4])
    return packet[12:end], qtype, qclass


def query(server: str, name: NameLike, qtype: int, *, timeout: float = 3.0) -> Answer:
    """Ask ``server`` (port 53, UDP, recursion desired) once."""
    qid = secrets.randbelow(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    packet += wire_name(name) + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, DNS_PORT))
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(deadline - time.monotonic(), 0.001))
            reply = s.recv(65536)
            if len(reply) >= 12 and struct.unpack(">H", reply[:2])[0] == qid:
                break
    _, flags, qdcount, ancount = struct.unpack(">HHHH", reply[:8])
    pos = 12
    for _ in range(qdcount):
        _, pos = _read_name(reply, pos)
        pos += 4
    records: list[tuple[int, bytes | tuple[bytes, ...]]] = []
    for _ in range(ancount):
        _, pos = _read_name(reply, pos)
        rtype, _, _, length = struct.unpack(">HHIH", reply[pos : pos + 10])
        pos += 10
        rdata: bytes | tuple[bytes, ...] = reply[pos : pos + length]
        if rtype == T_PTR:
            rdata = _read_name(reply, pos)[0]
        records.append((rtype, rdata))
        pos += length
    return Answer(flags & 0xF, tuple(records))


# ---- addresses -----------------------------------------------------------------


def _bindable(address: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def free_dns_addresses() -> Iterator[str]:
    """Addresses in 127.0.53.0/24 whose port 53 (UDP and TCP) is free
    now, starting at a place that depends on the process id so parallel
    runs seldom try the same one first."""
    start = os.getpid() % 254
    for i in range(254):
        address = f"{DNS_BLOCK}{(start + i) % 254 + 1}"
        if _bindable(address, DNS_PORT):
            yield address


def can_serve_dns() -> bool:
    """Whether this process may bind port 53 (root, or a capability)."""
    return any(True for _ in free_dns_addresses())


# ---- process helpers -----------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes], group: bool) -> None:
    """Terminate ``proc`` (with ``group``, its whole process group: the
    children tcpserver forks per connection too), kill it if it lingers,
    and reap it."""

    def send(sig: signal.Signals) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_WAIT)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=_STOP_WAIT)
    if group:
        send(signal.SIGKILL)  # children that outlived their parent


# ---- a Python DNS server that never answers, or fails --------------------------------

StubMode = Literal["blackhole", "servfail", "refused"]


@dataclass(frozen=True)
class StubQuery:
    """A query a StubDns received: when (time.monotonic()), for what."""

    at: float
    name: tuple[bytes, ...]
    qtype: int


class _SocketServer:
    """A socket served by a thread until the ``with`` block ends: each
    time the socket is readable the thread calls ``_ready(sock)``."""

    def __init__(self) -> None:
        self._stop_event = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def _start(self, sock: socket.socket, name: str) -> None:
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name=name)
        self._thread.daemon = True
        self._thread.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_WAIT)
        if self._sock is not None:
            self._sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop_event.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if ready:
                self._ready(self._sock)

    def _ready(self, sock: socket.socket) -> None:
        raise NotImplementedError


class StubDns(_SocketServer):
    """A UDP DNS server in a thread: ``"blackhole"`` reads and drops every
    query, ``"servfail"`` and ``"refused"`` answer each with that rcode.
    It records every query it receives (``queries()``).  By default it
    listens on port 53 of a free 127.0.53.x, so it can stand in as
    DNSCACHEIP; ``address`` and ``port`` choose otherwise (port 0: any)."""

    def __init__(self, mode: StubMode, address: str | None = None, port: int = DNS_PORT) -> None:
        self.mode = mode
        self._want = (address, port)
        self.address = ""
        self.port = 0
        super().__init__()
        self._queries: list[StubQuery] = []
        self._lock = threading.Lock()

    def __enter__(self) -> StubDns:
        address, port = self._want
        candidates = [address] if address else free_dns_addresses()
        for candidate in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((candidate, port))
            except OSError:
                sock.close()
                if address:
                    raise
                continue
            break
        else:
            raise RuntimeError(f"no free address in {DNS_BLOCK}0/24 for port {port}")
        self.address, self.port = sock.getsockname()[:2]
        self._start(sock, f"StubDns-{self.mode}")
        return self

    def queries(self) -> list[StubQuery]:
        """The queries received so far, in order."""
        with self._lock:
            return list(self._queries)

    def _ready(self, sock: socket.socket) -> None:
        packet, peer = sock.recvfrom(65536)
        try:
            wire, qtype, qclass = _question(packet)
            name = _read_name(wire, 0)[0]
        except (IndexError, ValueError, struct.error):
            return
        with self._lock:
            self._queries.append(StubQuery(time.monotonic(), name, qtype))
        if self.mode == "blackhole":
            return
        rcode = RCODE_SERVFAIL if self.mode == "servfail" else RCODE_REFUSED
        qid, flags = struct.unpack(">HH", packet[:4])
        reply_flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode  # QR, opcode, RD, RA
        reply = struct.pack(">HHHHHH", qid, reply_flags, 1, 0, 0, 0)
        reply += wire + struct.pack(">HH", qtype, qclass)
        sock.sendto(reply, peer)


# ---- dnsmasq ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedQuery:
    """A query dnsmasq logged: its type ("A", "PTR", ...) and name as
    dnsmasq prints it ("<name unprintable>" for odd bytes)."""

    qtype: str
    name: str


_QUERY_LINE = re.compile(r"query\[(\w+)\] (.*) from \S+$")


class Dnsmasq:
    """dnsmasq on port 53 of a free 127.0.53.x, answering from ``zone``
    only.  ``address`` is where it listens (the DNSCACHEIP to give);
    ``take_queries()`` returns what it was asked since the last call.
    ``ttl`` is the TTL of every record (dnsmasq's local-ttl)."""

    def __init__(self, zone: Zone, *, program: str = "dnsmasq", ttl: int = 0) -> None:
        self.zone = zone
        self.program = program
        self.ttl = ttl
        self.address = ""
        self._stack = ExitStack()
        self._dir = Path()
        self._proc: subprocess.Popen[bytes] | None = None
        self._seen = 0

    @property
    def log(self) -> Path:
        """dnsmasq's log (its stderr)."""
        return self._dir / "dnsmasq.log"

    def __enter__(self) -> Dnsmasq:
        stack = self._stack
        try:
            self._dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dnsmasq-")))
            upstream: list[str] = []
            stubs: list[tuple[StubMode, list[str]]] = [
                ("servfail", self.zone.failing),
                ("blackhole", self.zone.hanging),
            ]
            for mode, names in stubs:
                if names:
                    stub = stack.enter_context(StubDns(mode, "127.0.0.1", 0))
                    upstream += [f"server=/{name}/{stub.address}#{stub.port}" for name in names]
            tried: list[str] = []
            for address in free_dns_addresses():
                tried.append(address)
                if self._start(address, upstream) or len(tried) == 5:
                    break
            if not self.address:
                raise RuntimeError(f"dnsmasq did not start on {tried}:\n{self._log_text()}")
            return self
        except BaseException:
            stack.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._halt()
        self._stack.close()

    def _start(self, address: str, upstream: list[str]) -> bool:
        """Start on ``address``; False when the address turned out to be
        taken (another run got there first)."""
        config = self._dir / "dnsmasq.conf"
        config.write_text(
            "\n".join(
                [
                    "port=53",
                    f"listen-address={address}",
                    "bind-interfaces",
                    "no-resolv",
                    "no-hosts",
                    "no-poll",
                    "no-negcache",
                    "cache-size=0",
                    "local=/#/",
                    f"local-ttl={self.ttl}",
                    "log-queries",
                    *upstream,
                    *self.zone.config_lines(),
                    "",
                ]
            )
        )
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [
                    self.program,
                    "--keep-in-foreground",
                    f"--conf-file={config}",
                    "--log-facility=-",
                    "--pid-file=",
                    "--user=nobody",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if "in use" in self._log_text():
                    return False
                raise RuntimeError(f"dnsmasq exited ({self._proc.returncode}):\n{self._log_text()}")
            try:
                if query(address, _READY_NAME, T_A, timeout=0.2).rcode == RCODE_NXDOMAIN:
                    self.address = address
                    return True
            except OSError:
                pass
        self._halt()
        raise RuntimeError(f"dnsmasq did not answer on {address}:\n{self._log_text()}")

    def _halt(self) -> None:
        if self._proc is not None:
            _stop(self._proc, group=False)
            self._proc = None

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def queries(self) -> list[LoggedQuery]:
        """Every query logged since dnsmasq started (but the readiness
        checks)."""
        found = []
        for line in self._log_text().splitlines():
            match = _QUERY_LINE.search(line)
            if match and match.group(2) != _READY_NAME:
                found.append(LoggedQuery(match.group(1), match.group(2)))
        return found

    def take_queries(self) -> list[LoggedQuery]:
        """The queries logged since the last call."""
        found = self.queries()
        new, self._seen = found[self._seen :], len(found)
        return new


# ---- an ident server for tcpserver -r ------------------------------------------------


class IdentServer(_SocketServer):
    """An ident (RFC 1413) server on port 113 of ``address``, a client's
    address (tcpserver -r asks the client's host), answering every
    request with USERID ``user``; ``requests`` are the lines it read."""

    def __init__(self, address: str, user: str) -> None:
        self.address = address
        self.user = user
        super().__init__()
        self.requests: list[bytes] = []

    def __enter__(self) -> IdentServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, 113))
            sock.listen(5)
        except BaseException:
            sock.close()
            raise
        self._start(sock, "IdentServer")
        return self

    def _ready(self, sock: socket.socket) -> None:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(5)
            try:
                line = conn.recv(1000).strip()
                self.requests.append(line)
                conn.sendall(line + b" : USERID : UNIX : " + self.user.encode() + b"\r\n")
            except OSError:
                pass


# ---- tcpserver and its clients --------------------------------------------------


@dataclass(frozen=True)
class Served:
    """What a client got from ``tcpserver ... env -0``: the child's whole
    environment (None when tcpserver dropped the connection without
    running it: a deny rule), and how long the exchange took (seconds;
    the DNS lookups happen between accept and exec)."""

    env: dict[bytes, bytes] | None
    seconds: float

    @property
    def dropped(self) -> bool:
        return self.env is None

    def get(self, name: str) -> bytes | None:
        """A variable of the child's environment (None: unset or dropped)."""
        return None if self.env is None else self.env.get(name.encode())

    @property
    def host(self) -> str | None:
        """TCPREMOTEHOST (djb's dotted form is ASCII by construction)."""
        value = self.get("TCPREMOTEHOST")
        return None if value is None else value.decode("ascii")


def parse_env0(out: bytes) -> dict[bytes, bytes]:
    """The environment ``env -0`` printed."""
    entries = out.split(b"\0")
    if entries.pop() != b"":
        raise ValueError(f"env -0 output not ended by NUL: {out!r}")
    env = {}
    for entry in entries:
        name, eq, value = entry.partition(b"=")
        if not eq:
            raise ValueError(f"env -0 entry without '=': {entry!r}")
        env[name] = value
    return env


def connect(port: int, source: str, *, server: str | None = None, timeout: float = 120.0) -> Served:
    """Connect from ``source`` (bound before connecting) to ``server``
    (127.0.0.1, or ::1 for an IPv6 source) on ``port`` and read until the
    server closes; raises socket.timeout after ``timeout`` seconds."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    if server is None:
        server = "::1" if family == socket.AF_INET6 else SERVER_IP
    start = time.monotonic()
    deadline = start + timeout
    chunks = []
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect((server, port))
        try:
            while True:
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    seconds = time.monotonic() - start
    out = b"".join(chunks)
    return Served(parse_env0(out) if out else None, seconds)


def tcpserver_argv(
    program: str,
    *,
    paranoid: bool,
    host: str,
    rules: str | os.PathLike[str] | None = None,
    ident: bool = False,
    lookup: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """tcpserver's command line: port 0 (printed, -1), verbose, -p or -P,
    -h or -H, -r or -R, -l localhost, -x ``rules``; the child is env -0."""
    argv = [program, "-1", "-v", "-p" if paranoid else "-P", "-h" if lookup else "-H"]
    argv += ["-r" if ident else "-R", "-l", "localhost"]
    if rules is not None:
        argv += ["-x", os.fspath(rules)]
    env_program = shutil.which("env") or "/usr/bin/env"
    return [*argv, *extra, host, "0", env_program, "-0"]


class TcpServer:
    """The real tcpserver with DNSCACHEIP=``dns``, on ``host`` and a port
    it chooses (``port``).  Its environment is PATH and DNSCACHEIP only,
    so the child's environment is those two plus what tcpserver and the
    rules set.  ``log()`` is its -v output.  Leaving the context kills it
    and every child it forked (a connection stuck in a DNS lookup)."""

    def __init__(
        self,
        dns: str,
        *,
        paranoid: bool,
        program: str = "tcpserver",
        host: str = SERVER_IP,
        rules: str | os.PathLike[str] | None = None,
        ident: bool = False,
        lookup: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.dns = dns
        self.host = host
        self.argv = tcpserver_argv(
            program,
            paranoid=paranoid,
            host=host,
            rules=rules,
            ident=ident,
            lookup=lookup,
            extra=extra,
        )
        self.port = 0
        self._stack = ExitStack()
        self._log = Path()

    def __enter__(self) -> TcpServer:
        stack = self._stack
        try:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tcpserver-")))
            self._log = workdir / "tcpserver.log"
            with open(self._log, "wb") as log:
                proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env={"PATH": "/usr/bin:/bin", "DNSCACHEIP": self.dns},
                    start_new_session=True,
                )
            stack.callback(_stop, proc, True)
            assert proc.stdout is not None
            stack.callback(proc.stdout.close)
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            line = proc.stdout.readline() if ready else b""
            if not line.strip().isdigit():
                raise RuntimeError(f"tcpserver did not start: {line!r} {self.log()}")
            self.port = int(line)
            return self
        except BaseException:
            stack.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def log(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    def connect(self, source: str, *, timeout: float = 120.0) -> Served:
        """A connection from ``source``: what tcpserver's child saw.  A
        server on every address (host "0") is reached at 127.0.0.1 from
        an IPv4 source and at ::1 from an IPv6 one."""
        server = None if self.host == "0" else self.host
        return connect(self.port, source, server=server, timeout=timeout)


# ---- the IPv6 tcpserver (Debian's ucspi-tcp-ipv6, unpacked, not installed) ----------


def unpack_ipv6_tcpserver(dest: Path) -> str:
    """Download Debian's ucspi-tcp-ipv6 (``apt-get download``) into
    ``dest``, unpack it there (``dpkg-deb -x``) and return the path of
    its tcpserver.  Raises RuntimeError when that fails."""
    dest.mkdir(parents=True, exist_ok=True)
    download = subprocess.run(
        ["apt-get", "download", "ucspi-tcp-ipv6"],
        cwd=dest,
        capture_output=True,
        timeout=300,
    )
    debs = sorted(dest.glob("ucspi-tcp-ipv6_*.deb"))
    if download.returncode != 0 or not debs:
        raise RuntimeError(f"apt-get download ucspi-tcp-ipv6 failed: {download.stderr!r}")
    root = dest / "root"
    unpack = subprocess.run(
        ["dpkg-deb", "-x", str(debs[-1]), str(root)], capture_output=True, timeout=120
    )
    program = root / "usr" / "bin" / "tcpserver"
    if unpack.returncode != 0 or not program.exists():
        raise RuntimeError(f"dpkg-deb -x {debs[-1]} failed: {unpack.stderr!r}")
    return str(program)


# ---- the programs, for pytest: skip when missing, fail in CI ---------------------------


def require_dnsmasq() -> str:
    """dnsmasq's path, once it is known that port 53 can be bound (root);
    skips the test locally when either is missing, fails it in CI."""
    found = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    program = ref(found or "dnsmasq")
    if not can_serve_dns():
        message = f"cannot bind port 53 on {DNS_BLOCK}0/24 (run as root) for dnsmasq"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return program


def has_ipv6_loopback() -> bool:
    """Whether ::1 exists (containers often run with IPv6 disabled)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def require_ipv6_tcpserver(dest: Path) -> str:
    """The tcpserver of Debian's ucspi-tcp-ipv6: $PYCDB_TCPSERVER6, the
    one README.md's test command unpacks into ``helpers.UCSPI_TCP_IPV6``
    (/opt/ucspi-tcp-ipv6, where the dialect tests find its tcprules and
    tcprulescheck too), or one downloaded and unpacked into ``dest``
    (never installed: it would replace ucspi-tcp's).  Skips locally when
    none works, fails in CI; skips everywhere when the machine has no
    ::1, as there is nothing to test then."""
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback address (::1) on this machine")
    given = os.environ.get("PYCDB_TCPSERVER6")
    if given:
        return given
    unpacked = UCSPI_TCP_IPV6 / "usr" / "bin" / "tcpserver"
    if os.access(unpacked, os.X_OK):
        return str(unpacked)
    try:
        return unpack_ipv6_tcpserver(dest)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        message = f"no IPv6 tcpserver (set PYCDB_TCPSERVER6 or allow apt-get download): {exc}"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
