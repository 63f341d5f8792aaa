"""tcpserver's key order: the keys ucspi-tcp's ``rules()`` tries for a
connection, first to last (docs/lookup-order.md).  The pure backend's
rules walk, the C core's (``src_c/rules_check.c``, held to this by the
tests) and every tool that explains a decision follow this sequence."""

from __future__ import annotations

from collections.abc import Iterator


def rules_keys(ip: bytes, host: bytes | None, info: bytes | None) -> Iterator[bytes]:
    """The keys tcpserver tries for a connection from ``ip`` (its text),
    ``host`` and ``info`` (None when not known), in its order:
    ``info@ip``, ``info@=host``, ``ip``, ``=host``, the ip cut after each
    ``.`` longest first, ``=`` plus each host suffix starting at a ``.``
    longest first, ``=``, the empty key.  A key may come twice (an ip
    ending in ``.``, a host starting with one): tcpserver asks again, and
    so does this."""
    if info is not None:
        yield info + b"@" + ip
        if host is not None:
            yield info + b"@=" + host
    yield ip
    if host is not None:
        yield b"=" + host
    i = len(ip)
    while i > 0:
        i = ip.rfind(b".", 0, i)
        if i < 0:
            break
        yield ip[: i + 1]
    if host is not None:
        i = host.find(b".")
        while i >= 0:
            yield b"=" + host[i:]
            i = host.find(b".", i + 1)
        yield b"="
    yield b""
