"""tcpserver's key order: the keys ucspi-tcp's ``rules()`` tries for a
connection, first to last (docs/lookup-order.md §1).  The pure backend's
rules walk, the C core's (``src_c/rules_check.c``, held to this by the
tests) and every tool that explains a decision follow this sequence."""

from __future__ import annotations

from collections.abc import Iterator

#: No bound on a key's length.
UNBOUNDED = 1 << 64

#: Why a backend's rules walk refuses an address holding ``:`` (both say
#: it the same way; pycdb.rules.ruleset decides what it means).
IPV6_WALK = "an address holding ':' (IPv6) is not one ucspi-tcp 0.88's rules walk takes"


def rules_keys(
    ip: bytes, host: bytes | None, info: bytes | None, longest: int = UNBOUNDED
) -> Iterator[bytes]:
    """The keys tcpserver tries for a connection from ``ip`` (its text),
    ``host`` and ``info`` (None when not known), in its order:
    ``info@ip``, ``info@=host``, ``ip``, ``=host``, the ip cut after each
    ``.`` longest first, ``=`` plus each host suffix starting at a ``.``
    longest first, ``=``, the empty key.  A key may come twice (an ip
    ending in ``.``, a host starting with one): tcpserver asks again, and
    so does this.

    Keys longer than ``longest`` (no record holds one) are left out
    without being built, so the work is linear in the input however long
    a host name an attacker sends: only suffixes and prefixes no longer
    than ``longest`` are made."""
    if info is not None:
        if len(info) + 1 + len(ip) <= longest:
            yield info + b"@" + ip
        if host is not None and len(info) + 2 + len(host) <= longest:
            yield info + b"@=" + host
    if len(ip) <= longest:
        yield ip
    if host is not None and len(host) + 1 <= longest:
        yield b"=" + host
    i = min(len(ip), longest)  # a prefix ip[: i + 1] fits when i < longest
    while i > 0:
        i = ip.rfind(b".", 0, i)
        if i < 0:
            break
        yield ip[: i + 1]
    if host is not None:
        # "=" + host[i:] fits when len(host) - i + 1 <= longest.
        i = host.find(b".", max(0, len(host) + 1 - longest))
        while i >= 0:
            yield b"=" + host[i:]
            i = host.find(b".", i + 1)
        if longest >= 1:
            yield b"="
    yield b""
