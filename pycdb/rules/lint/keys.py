"""Which connections reach a key, and, when none does, why not.

:func:`pycdb.rules.forms.lookup_form` says whether some connection makes
tcpserver look a key up (docs/lookup-order.md §1, §2); this module adds
what lint tells the person who wrote a key that none reaches: the likely
mistake (a CIDR network, capitals in a host name, an inline comment, a
byte order mark, ...) and how to write what was meant.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from ..._iptext import MAPPED, bits_to_ip4_text, bits_to_ip6_text, fefe_fmt
from ..._text import quote
from .._names import CLASSIC, FEFE, FEH
from ..forms import (
    Form,
    cidr_bits,
    fefe_prefix_network,
    fefe_prefix_of,
    fefe_reach,
    is_full_form,
    is_host_name,
    is_ip_prefix,
    lookup_form,
)
from .wording import quote_text

__all__ = ["Dead", "shape"]

_DOTTED = re.compile(rb"[0-9.]+\Z")
_CIDR4 = re.compile(rb"([0-9]{1,3}(?:\.[0-9]{1,3}){0,3})/([0-9]{1,2})\Z")
_BOM = b"\xef\xbb\xbf"


class Dead(NamedTuple):
    """A key no connection reaches: the finding's code and message."""

    code: str
    why: str


def shape(key: bytes, dialect: str = CLASSIC) -> Form | Dead:
    """The form of ``key`` among those ``dialect``'s tcpserver looks up
    (:mod:`pycdb.rules.dialects`; ucspi-tcp 0.88 by default), or, when no
    connection reaches it, the :class:`Dead` finding that says why."""
    if key.startswith(_BOM):
        # tcprules keeps the mark as the first bytes of the first line
        # (docs/rules-language.md §2), so the first rule's key holds it.
        return Dead(
            "never-matches",
            f"{quote(key[3:])} never matches: the file starts with a UTF-8 byte order mark "
            "(the bytes EF BB BF), which tcprules keeps as the start of this key; save the "
            "file without it",
        )
    if dialect == FEFE:
        fork = _fefe_shape(key)
        if fork is not None:
            return fork
    elif dialect == FEH:
        fork = _feh_shape(key)
        if fork is not None:
            return fork
    elif key[:1] in (b"_", b"^") and cidr_bits(key) is not None:
        _, network, prefix = cidr_bits(key) or (0, b"", 0)
        return _never(
            key,
            f"it is ucspi-tcp6's CIDR key for {ipaddress.ip_network((network, prefix))}, which "
            "ucspi-tcp 0.88's tcpserver never looks up; a database built by ucspi-tcp6's "
            "tcprules is linted with --dialect ucspi-tcp6",
        )
    elif 58 in key and key[:1] != b"=" and 61 not in key:
        return _never(
            key,
            "it holds a ':', and ucspi-tcp 0.88's tcpserver has no IPv6, so no client address "
            "has one; a database built by an IPv6 tcprules is linted with --dialect "
            "ucspi-tcp-ipv6 or --dialect ucspi-tcp6",
        )
    form = lookup_form(key)
    if form is not None:
        return form
    if 64 in key:  # '@'
        target = key[key.rfind(b"@") + 1 :]
        if target[:1] == b"=":
            return _bad_host(target[1:], key, ident=True)
        return _bad_address(target, key, ident=True)
    if key[:1] == b"=":
        return _bad_host(key[1:], key, ident=False)
    return _bad_address(key, key, ident=False)


def _inline_comment(whole: bytes) -> Dead:
    return Dead(
        "inline-comment",
        f"{quote(whole)} never matches: tcprules has no inline comments, so the key is "
        "everything before the ':', comment and blanks included; put the comment on a "
        "line of its own, starting with '#'",
    )


def _never(whole: bytes, why: str) -> Dead:
    return Dead("never-matches", f"{quote(whole)} never matches: {why}")


def _bad_host(name: bytes, whole: bytes, ident: bool) -> Dead:
    """Why ``name``, a host after ``=`` or ``@=`` in the key ``whole``, is
    no name tcpserver writes (:func:`pycdb.rules.forms.is_host_name`)."""
    if 35 in name:  # '#'
        return _inline_comment(whole)
    if 42 in name:  # '*'
        return _never(
            whole,
            "tcprules has no wildcards (a '*' is just a byte of the key); '=.example.com' "
            "matches every name under example.com",
        )
    if ident and name[:1] == b".":
        return _never(
            whole,
            "an ident rule names one whole host name (tcpserver looks up the ident answer, "
            "'@=' and the client's full name), not a suffix",
        )
    body = name[1:] if name[:1] == b"." else name
    if is_host_name(body.lower()):
        fixed = whole[: len(whole) - len(name)] + name.lower()
        return Dead(
            "uppercase-host",
            f"{quote(whole)} never matches: tcpserver lower-cases the host names it gets "
            f"from DNS; write {quote(fixed)}",
        )
    if body.endswith(b".") and is_host_name(body.rstrip(b".").lower()):
        fixed = whole[: len(whole) - len(name)] + name.rstrip(b".")
        return _never(
            whole,
            f"tcpserver writes host names without a trailing '.'; write {quote(fixed)}",
        )
    return _never(
        whole,
        "the host names tcpserver compares hold only lower-case letters, digits, '-', '_' "
        "and dots between labels (any other byte as a \\ooo escape)",
    )


def _cidr_hint(address: bytes, bits: int) -> str:
    """The tcprules way to write an IPv4 network: a prefix, a range of
    prefixes, or a range in the last octet (docs/rules-language.md §7).
    ValueError when ``address/bits`` is no network."""
    net = ipaddress.IPv4Network(f"{address.decode()}/{bits}", strict=False)
    octets = str(net.network_address).split(".")
    if bits == 0:
        return "the default rule ':' matches every address"
    whole, rest = divmod(bits, 8)
    if rest == 0:
        text = ".".join(octets[:whole]) + ("." if whole < 4 else "")
        return f"write {quote_text(text)}"
    low = int(octets[whole])
    high = low + (1 << (8 - rest)) - 1
    head = "".join(o + "." for o in octets[:whole])
    text = f"{head}{low}-{high}" + ("." if whole < 3 else "")
    return f"write the range {quote_text(text)}"


def _bad_address(key: bytes, whole: bytes, ident: bool) -> Dead:
    """Why ``key``, compared with the client's address text (the part
    after ``@`` of the key ``whole`` for an ident rule), is no address or
    prefix tcpserver writes."""
    if 35 in key:  # '#'
        return _inline_comment(whole)
    m = _CIDR4.match(key)
    if m and not ident:
        bits = int(m.group(2))
        try:
            hint = _cidr_hint(m.group(1), bits) if bits <= 32 else None
        except ValueError:
            hint = None
        if hint is not None:
            return Dead(
                "cidr",
                f"{quote(whole)} never matches: tcprules has no CIDR notation and stores it "
                f"as a key of its own, which no client address equals; {hint}",
            )
    if 42 in key:  # '*'
        return _never(
            whole,
            "tcprules has no wildcards (a '*' is just a byte of the key); a prefix such as "
            "'10.1.' matches every address that starts with it",
        )
    if key != key.strip(b" \t"):
        return _never(
            whole,
            "the blanks around the address are part of the key (tcprules only trims the end "
            "of the line)",
        )
    if ident and is_ip_prefix(key):
        return _never(
            whole,
            "an ident rule names one whole address (tcpserver looks up the ident answer, '@' "
            "and the client's full address), not a prefix",
        )
    if _DOTTED.match(key):
        parts = key.split(b".")
        if any(len(p) > 1 and p[:1] == b"0" for p in parts):
            fixed = b".".join(p.lstrip(b"0") or b"0" for p in parts)
            why = f"tcpserver writes addresses without leading zeros ({quote(fixed)})"
        elif any(len(p) > 3 or (p and int(p) > 255) for p in parts):
            why = "an address byte is at most 255"
        elif b"" not in parts and len(parts) < 4:
            why = (
                "a key without a trailing '.' is compared with the whole address; for every "
                f"address that starts with it, write the prefix {quote(key + b'.')}"
            )
        elif len(parts) == 5 and parts[4] == b"":
            why = f"an address has four parts; write {quote(key[:-1])}"
        else:
            why = "it is neither an address (1.2.3.4) nor a prefix (1.2.3.)"
        return _never(whole, why)
    if not ident and is_host_name(key.lower()):
        return _never(
            whole,
            "tcpserver compares a key without '=' or '@' with the client's address; a rule "
            f"for a host name is written {quote(b'=' + key.lower())}",
        )
    return _never(
        whole,
        "it is neither an address, a prefix such as '10.1.', '=' and a host name, nor "
        "'user@' and one of those",
    )


# ---- the IPv6 dialects -----------------------------------------------------------


def _ipv4_of(ip: bytes) -> str:
    return str(ipaddress.IPv4Address(ip[12:]))


def _fefe_shape(key: bytes) -> Form | Dead | None:
    """A key of ucspi-tcp-ipv6 that holds a ``:`` (an IPv6 rule): its form,
    or why its tcpserver never writes that text; None for any other key."""
    if key[:1] == b"=" or 61 in key or 58 not in key:
        return None
    at = key.rfind(b"@")
    target = key[at + 1 :]
    if 58 not in target:
        return None
    reach = fefe_reach(target)
    if at >= 0:
        if reach == "ip":
            return "ident-ip"
        if reach == "prefix":
            return _never(
                key,
                "an ident rule names one whole address (tcpserver looks up the ident answer, "
                "'@' and the client's full address), not a prefix",
            )
    elif reach in ("ip", "prefix"):
        partial = _fefe_partial(target) if target.endswith(b":") else None
        if partial is not None:
            return Dead("ipv6-prefix", f"{quote(key)} {partial}")
        return "ip" if reach == "ip" else "prefix"
    if reach == "mapped":
        ipv4 = target[len(_MAPPED_TEXT) :] if target.startswith(_MAPPED_TEXT) else b""
        what = "IPv4 address" if reach_exact(target) else "IPv4 prefix"
        fix = (
            f"write the {what} {quote(key[: len(key) - len(target)] + ipv4)}"
            if ipv4
            else "write the rules for the IPv4 addresses"
        )
        return Dead(
            "mapped-ipv4",
            f"{quote(key)} never matches unless tcpserver runs with -6: ucspi-tcp-ipv6's "
            "tcpserver writes an IPv4 client (on an IPv6 socket, ::ffff:a.b.c.d) as its dotted "
            f"quad, a.b.c.d; {fix}",
        )
    return Dead("ipv6-form", f"{quote(key)} never matches: {_fefe_why(target)}")


_MAPPED_TEXT = b"::ffff:"


def reach_exact(text: bytes) -> bool:
    """Whether ``text`` is a whole IPv4-mapped address (not a prefix)."""
    return not text.endswith((b".", b":"))


def _fefe_partial(text: bytes) -> str | None:
    """Why the ucspi-tcp-ipv6 prefix ``text`` matches only some of the
    addresses it seems to name (None when it matches exactly a network,
    as ``2001:db8:`` does 2001:db8::/32)."""
    if fefe_prefix_network(text) is not None:
        return None
    body = text.rstrip(b":")
    if b"::" not in text and body and all(g for g in body.split(b":")):
        groups = [int(g, 16) for g in body.split(b":")]
        groups += [1] * (8 - len(groups))
        example = b"".join(g.to_bytes(2, "big") for g in groups)
        plain = ":".join(f"{g:x}" for g in groups)
        missed = f" ({plain} is written {fefe_fmt(example).decode()}, which it does not match)"
    else:
        missed = ""
    return (
        "matches only some of the addresses it seems to name: ucspi-tcp-ipv6's tcpserver "
        "writes the longest run of zero groups as '::', so whether a client's text starts "
        f"with it depends on the zero groups after it{missed}; no prefix names such a network "
        "exactly in this dialect (ucspi-tcp6's CIDR rules do)"
    )


def _fefe_why(text: bytes) -> str:
    """Why ucspi-tcp-ipv6's tcpserver never writes (or starts) the IPv6
    text ``text``, and what to write instead."""
    import ipaddress as ip

    cidr = text.partition(b"/")
    if cidr[1]:
        try:
            net = ip.IPv6Network(cidr[0].decode("ascii") + "/" + cidr[2].decode("ascii"))
        except ValueError:
            return "it is neither an IPv6 address nor a prefix of one as tcpserver writes it"
        hint = fefe_prefix_of(net)
        return (
            "ucspi-tcp-ipv6 has no CIDR: it stores the network as a key of its own, which no "
            "client address equals; "
            + (
                f"the prefix {quote(hint)} matches exactly its addresses"
                if hint is not None
                else "no prefix of tcpserver's text covers exactly its addresses"
            )
        )
    try:
        address = ip.IPv6Address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return (
            "no IPv6 address as ucspi-tcp-ipv6's tcpserver writes it (lower case, no leading "
            "zeros, the longest run of zero groups as '::') starts with it"
        )
    return (
        f"ucspi-tcp-ipv6's tcpserver writes this address {quote(fefe_fmt(address.packed))} "
        "(lower case, no leading zeros, the longest run of zero groups, even a single one, as "
        "'::'); write that"
    )


def _feh_shape(key: bytes) -> Form | Dead | None:
    """A key of ucspi-tcp6 that is an IPv6 address, a CIDR key or an
    ident rule for either: its form, or why its tcpserver never looks it
    up; None for any other key."""
    cidr = cidr_bits(key)
    if cidr is not None:
        version, network, prefix = cidr
        net = ipaddress.ip_network((network, prefix))
        shown = quote((bits_to_ip4_text if version == 4 else bits_to_ip6_text)(key) or b"")
        if prefix == 1:
            halves = list(net.subnets(new_prefix=2))
            return Dead(
                "dead-prefix",
                f"the CIDR rule for {net} never matches: ucspi-tcp6's tcpserver tries CIDR keys "
                f"from /{32 if version == 4 else 128} down to /2, never /1; write the two /2 "
                f"rules {halves[0]} and {halves[1]}",
            )
        if version == 6 and prefix >= 96 and network[:12] == MAPPED:
            return Dead(
                "mapped-ipv4",
                f"the CIDR rule for {shown[1:-1]} never matches: ucspi-tcp6's tcpserver writes an "
                "IPv4 client (on an IPv6 socket, ::ffff:a.b.c.d) as its dotted quad, and looks "
                f"up its IPv4 keys; write the IPv4 network {_ipv4_of(network)}/{prefix - 96}",
            )
        return "cidr"
    at = key.find(b"@")
    target = key[at + 1 :]
    if at >= 0 and 47 in target and 61 not in key:
        return _never(
            key,
            "an ident rule names one whole address (tcpserver looks up the ident answer, '@' "
            "and the client's address), and ucspi-tcp6 stores 'user@' and a network as "
            "written, which no client's address equals",
        )
    if key[:1] == b"=" or 61 in key or 58 not in key:
        return None
    if not is_full_form(target):
        return _never(
            key,
            "ucspi-tcp6 looks an IPv6 client up in the full form (2001:0DB8:0000:...), and "
            "this key is not in it",
        )
    packed = bytes.fromhex(target.replace(b":", b"").decode())
    if packed[:12] == MAPPED:
        return Dead(
            "mapped-ipv4",
            f"{quote(key)} never matches: ucspi-tcp6's tcpserver writes an IPv4 client (on an "
            "IPv6 socket, ::ffff:a.b.c.d) as its dotted quad; write the rule for "
            f"{_ipv4_of(packed)}",
        )
    return "ident-ip" if at >= 0 else "ip"
