"""Who can relay: the relay judge.

qmail-smtpd relays for a client when RELAYCLIENT is set, whatever its
value.  A record that allows and sets it (as tcpserver reads its data,
docs/lookup-order.md §4) grants relaying to every client that reaches
its key, and who that is depends on the key's form and on who vouches
for what the form tests (docs/lookup-order.md §3):

* the empty key (the default) and ``=`` (any client with a PTR record):
  everybody, an open relay;
* ``=host``, ``=.suffix``, ``info@=host``: whoever can make a PTR record
  say so, which is anyone who controls the reverse DNS of an address they
  use, unless tcpserver runs with ``-p`` (it then uses a name only when
  it resolves back to the client's address); ``=.com`` is open even then;
* ``info@ip``: the ident answer comes from the client's own host, so
  this is a grant to whoever at that address can answer for the name;
* an address or a prefix: the TCP handshake vouches for it.  Only a
  whole public /8 is worth a warning.

A key no connection reaches grants nothing, and never gets here
(:mod:`pycdb.rules.lint.keys` gives it its own warning).
"""

from __future__ import annotations

import ipaddress

from ..._text import quote
from ..forms import Form, cidr_bits
from .report import Said

__all__ = ["relay"]


def _prefix_is_public(key: bytes) -> bool:
    net = ipaddress.IPv4Network(key.decode() + "0.0.0/8")
    return not (net.is_private or net.is_reserved or net.is_multicast or net.is_loopback)


def relay(key: bytes, form: Form, paranoid: bool) -> list[Said]:
    """The findings for a key of ``form`` that some connection reaches
    and whose record allows and sets RELAYCLIENT: how far the grant
    reaches.  ``paranoid``: tcpserver runs with ``-p``."""
    if form == "default":
        return [
            (
                "error",
                "open-relay",
                "the default rule (the empty key, used for every client no other rule "
                "matches) grants RELAYCLIENT: qmail-smtpd relays mail for anyone on the "
                "Internet (an open relay); give the default no RELAYCLIENT and grant it by "
                "address",
            )
        ]
    if form == "any-name":
        return [
            (
                "error",
                "open-relay",
                "the rule '=' matches every client whose address has a PTR record (any host "
                "name at all) and grants RELAYCLIENT: anyone who sets up reverse DNS for an "
                "address they use can relay, an open relay (tcpserver -p does not help: "
                "their name resolves back to them); grant RELAYCLIENT by address",
            )
        ]
    if form in ("host", "suffix", "ident-host"):
        return _by_name(key, form, paranoid)
    if form == "ident-ip":
        at = key.rfind(b"@")
        return [
            (
                "warning",
                "ident-relay",
                f"{quote(key)} grants RELAYCLIENT on the ident (RFC 1413) answer "
                f"{quote(key[:at])} from {quote(key[at + 1 :])}: that answer comes from the "
                "client's own host, whose administrator (and, with some ident servers, any "
                "user) chooses it, so this is a grant to whoever can connect from that "
                "address",
            )
        ]
    if form == "prefix" and key.count(b".") == 1 and 58 not in key and _prefix_is_public(key):
        return [
            (
                "warning",
                "broad-relay",
                f"{quote(key)} grants RELAYCLIENT to a whole public /8 network, "
                f"{key.decode()}0.0.0/8: 16777216 addresses, most of them not yours",
            )
        ]
    if form == "cidr":
        return _broad_cidr(key)
    return []


def _broad_cidr(key: bytes) -> list[Said]:
    """An ucspi-tcp6 CIDR key granting RELAYCLIENT to a public IPv4 /8 or
    wider, or an IPv6 /32 or wider (an internet registry's allocation)."""
    found = cidr_bits(key)
    if found is None:  # pragma: no cover - only CIDR keys have the form
        return []
    version, network, prefix = found
    net = ipaddress.ip_network((network, prefix))
    if not net.is_global or prefix > (8 if version == 4 else 32):
        return []
    many = f"{net.num_addresses}" if version == 4 else f"2**{128 - prefix}"
    return [
        (
            "warning",
            "broad-relay",
            f"the CIDR rule for {net} grants RELAYCLIENT to a whole public network: {many} "
            "addresses, most of them not yours",
        )
    ]


def _by_name(key: bytes, form: Form, paranoid: bool) -> list[Said]:
    """A grant by host name (``=host``, ``=.suffix``, ``info@=host``)."""
    target = key[key.rfind(b"@") + 1 :] if form == "ident-host" else key
    name = target[1:]
    if form == "suffix" and len(name) > 1 and b"." not in name[1:]:
        return [
            (
                "error",
                "open-relay",
                f"{quote(key)} grants RELAYCLIENT to every client whose host name ends in "
                f"{quote(name)}: anyone can register a name there and point their reverse "
                "DNS at it, an open relay (tcpserver -p does not help: their name "
                "resolves back to them); grant RELAYCLIENT by address",
            )
        ]
    under = form == "suffix" and len(name) > 1
    who = f"a name under {quote(name[1:])}" if under else f"to be {quote(name)}"
    ident = ""
    if form == "ident-host":
        user = key[: key.rfind(b"@")]
        ident = (
            f" (the ident answer {quote(user)} adds nothing: it comes from the client's own host)"
        )
    if paranoid:
        return [
            (
                "info",
                "relay-by-name",
                f"{quote(key)} grants RELAYCLIENT by host name{ident}: safe only while "
                "tcpserver runs with -p, which uses a name only when it resolves back to "
                "the client's address",
            )
        ]
    return [
        (
            "error",
            "relay-by-name",
            f"{quote(key)} grants RELAYCLIENT by host name{ident}: tcpserver takes the name "
            "from the client's PTR record, which whoever controls the reverse DNS of the "
            f"client's address can set to anything, so anyone can claim {who} and relay, "
            "unless tcpserver runs with -p (it then uses a name only when the name "
            "resolves back to the client's address); run tcpserver with -p (and lint "
            "with --paranoid), or grant RELAYCLIENT by address",
        )
    ]
