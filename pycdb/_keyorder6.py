"""The key orders of the IPv6 forks of ucspi-tcp: the keys their
tcpserver and tcprulescheck try for a connection, first to last, given
``TCPREMOTEIP`` as text (docs/dialects.md §4).  ucspi-tcp 0.88's own
order is :mod:`pycdb._keyorder`; these follow it where the forks do.

Both take the same arguments as :func:`pycdb._keyorder.rules_keys` and,
like it, leave out without building them the keys longer than
``longest`` (no record holds one).  Pinned against the real programs:
tests/test_dialect_oracle.py (ucspi-tcp-ipv6's tcprulescheck) and
tests/test_dialect_vectors.py (both forks, recorded).
"""

from __future__ import annotations

from collections.abc import Container, Iterator

from ._iptext import bits4, bits6, full_form, ip4_scan, ip6_scan
from ._keyorder import UNBOUNDED

__all__ = ["fefe_keys", "feh_keys"]


def _host_keys(host: bytes, longest: int) -> Iterator[bytes]:
    """``=`` and each suffix of host starting at a ``.``, longest first,
    then ``=`` alone (ucspi-tcp's step 5)."""
    i = host.find(b".", max(0, len(host) + 1 - longest))
    while i >= 0:
        yield b"=" + host[i:]
        i = host.find(b".", i + 1)
    if longest >= 1:
        yield b"="


def fefe_keys(
    ip: bytes, host: bytes | None, info: bytes | None, longest: int = UNBOUNDED
) -> Iterator[bytes]:
    """ucspi-tcp-ipv6's order (Felix von Leitner's patch to ``rules.c``):
    ucspi-tcp's, except that the address is also cut just after each
    ``:``, so ``2001:db8::1`` tries ``2001:db8::``, ``2001:db8:`` and
    ``2001:`` after ``=host``.  The address text is used as given."""
    if info is not None:
        if len(info) + 1 + len(ip) <= longest:
            yield info + b"@" + ip
        if host is not None and len(info) + 2 + len(host) <= longest:
            yield info + b"@=" + host
    if len(ip) <= longest:
        yield ip
    if host is not None and len(host) + 1 <= longest:
        yield b"=" + host
    for n in range(min(len(ip), longest), 0, -1):
        if ip[n - 1] in (46, 58):  # '.', ':'
            yield ip[:n]
    if host is not None:
        yield from _host_keys(host, longest)
    yield b""


def _full(ip: bytes) -> bytes | None:
    n, raw = ip6_scan(ip)
    return full_form(raw) if n else None


def feh_keys(
    ip: bytes,
    host: bytes | None,
    info: bytes | None,
    longest: int = UNBOUNDED,
    cidr_lengths: Container[int] | None = None,
) -> Iterator[bytes]:
    """ucspi-tcp6's order (its ``rules.c``, 1.11): ``info@ip``,
    ``info@=host``, ip, ``=host``, the dotted prefixes of an IPv4
    address, its CIDR keys (``_`` and 32 down to 2 bits) or an IPv6
    address's (``^`` and 128 down to 2 bits: a /1 rule is never tried),
    the host's suffixes, ``=``, the empty key.

    An address with a ``:`` is IPv6 and is looked up in the full form
    (``2001:0DB8:...``) whatever its spelling; one that does not parse
    gets no exact and no CIDR key, and ``info@`` alone stands for
    ``info@ip`` (as in the original).  An IPv4 address's CIDR keys come
    from the bytes ``ip4_scan`` read, whether or not it read all four.

    ``cidr_lengths``, when given, holds the lengths of the ``_``/``^`` keys
    the database has: the other CIDR keys are not built (none can be
    found).  The original also asks for one key a byte longer than the
    longest bit string, whose last byte is whatever follows in memory;
    no rules file has such a key, and it is left out."""
    ipv6 = 58 in ip  # ':'
    full = _full(ip) if ipv6 else None
    if info is not None:
        key = info + b"@" + ((full or b"") if ipv6 else ip)
        if len(key) <= longest:
            yield key
        if host is not None and len(info) + 2 + len(host) <= longest:
            yield info + b"@=" + host
    if ipv6:
        if full is not None and len(full) <= longest:
            yield full
    elif len(ip) <= longest:
        yield ip
    if host is not None and len(host) + 1 <= longest:
        yield b"=" + host
    if ipv6:
        n, raw = ip6_scan(ip)
        if n:
            bits = bits6(raw, 128)
            for p in range(min(128, longest - 1), 1, -1):
                if cidr_lengths is None or p + 1 in cidr_lengths:
                    yield b"^" + bits[:p]
    else:
        for n in range(min(len(ip), longest), 0, -1):
            if ip[n - 1] == 46:  # '.'
                yield ip[:n]
        bits = bits4(ip4_scan(ip)[1], 32)
        for p in range(min(32, longest - 1), 1, -1):
            if cidr_lengths is None or p + 1 in cidr_lengths:
                yield b"_" + bits[:p]
    if host is not None:
        yield from _host_keys(host, longest)
    yield b""
