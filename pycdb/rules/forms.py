"""The forms of tcprules keys: the one place that knows them, from both
ends of a rules database.

**What a tcprules line can write** (docs/rules-language.md §4, §7, §8),
for the tools that read a database back: :mod:`pycdb.rules.soundness` (is
every key one tcprules could have written?) and
:mod:`pycdb.rules.decompile` (which address writes it back?).
Everything follows from ``tcprules.c`` (ucspi-tcp 0.88), and the tests
check each claim against the real program:

* An address is the text of a line before its first ``:``, and a line
  ends at ``\\n``: no key holds ``:`` or a newline.
* A line whose first byte is ``#`` is a comment, and a line starts with
  its address: no key starts with ``#``.
* An address holding ``=`` or ``@`` is always the key itself, byte for
  byte, ``-`` or not.
* Any other address holding ``-`` is a range, and every key it adds is
  ``P N S``: ``P`` is the text before the range's low bound (empty or
  ending in ``.``, and free of ``-``, because the range's ``-`` is the
  address's first), ``N`` a number from 0 to 255 in canonical decimal
  (tcprules formats it; the bounds as written do not matter), and ``S``
  the text from the ``.`` after the high bound (or empty).  So a key with
  a ``-`` (and no ``=`` or ``@``) exists only if one of its dot-separated
  fields before its first ``-`` is such a number, and it is then written
  back as the one-key range ``P N-N S``.
* Every other address is the key itself.

Nothing else constrains a key: it may be empty, start or end with a space
or tab (a line is trimmed only after its last instruction), and hold NUL
or any other byte.

**What a connection can make tcpserver look up** (docs/lookup-order.md
§1, §2), for :mod:`pycdb.rules.lint`, which judges who can reach each
key: :func:`lookup_form` names the :data:`Form` of a key some
connection produces, and gives None for a key none does.  tcpserver
writes an address without leading zeros (``ip4_fmt``), cuts its prefixes
just after a ``.``, and writes a host name in lower case with every byte
but letters, digits, ``-``, ``_`` and the dots between labels as ``\\``
and three octal digits; an ident answer is whatever the client's ident
server says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from ipaddress import IPv6Network
from typing import Literal

__all__ = [
    "DECIMAL",
    "Form",
    "address_of",
    "is_address",
    "is_host_name",
    "is_ip_prefix",
    "is_range",
    "key_problem",
    "lookup_form",
    "next_in_range",
    "range_address",
    "range_fields",
]

#: Canonical decimal text of every number a range can produce.
DECIMAL = [b"%d" % n for n in range(256)]
_NUMBER = {text: n for n, text in enumerate(DECIMAL)}


def is_range(address: bytes) -> bool:
    """Whether tcprules reads ``address`` as a range (and expands it)."""
    return 45 in address and 61 not in address and 64 not in address  # '-', '=', '@'


def range_fields(key: bytes) -> list[tuple[int, int, int]]:
    """The ways a range line can produce ``key``: ``(start, end, n)`` for
    each dot-separated field ``key[start:end]`` that a range can have put
    there (the number ``n`` in canonical decimal, before the key's first
    ``-``), last field first.  Empty for a key holding ``=`` or ``@``,
    which no range produces.  Assumes :func:`key_problem` found nothing
    else wrong (no ``:``, newline, or leading ``#``)."""
    if 61 in key or 64 in key:
        return []
    dash = key.find(b"-")
    limit = len(key) if dash < 0 else dash
    out = []
    end = key.rfind(b".", 0, limit) if dash >= 0 else len(key)
    # With a '-', the field holding it cannot be the number: start from
    # the last '.' before the dash, which ends a field that can.
    while end >= 0:
        start = key.rfind(b".", 0, end) + 1
        n = _NUMBER.get(key[start:end])
        if n is not None:
            out.append((start, end, n))
        end = start - 1
    return out


def next_in_range(first: bytes, key: bytes) -> tuple[int, int, int] | None:
    """``(start, end, n)`` when one range line can produce ``first`` and
    then ``key``: ``first[start:end]`` is one of its :func:`range_fields`,
    holding the number ``n``, and ``key`` is ``first`` with ``n + 1``
    there.  None otherwise.  (The decompiler asks this for neighbouring
    records, so the common refusals come first and cheaply.)"""
    if 61 in first or 64 in first:  # '=', '@': never a range
        return None
    fa = first.split(b".")
    fk = key.split(b".")
    if len(fa) != len(fk):
        return None
    differs = list(map(bytes.__ne__, fa, fk))
    if differs.count(True) != 1:
        return None
    i = differs.index(True)
    n = _NUMBER.get(fa[i])
    if n is None or n == 255 or fk[i] != DECIMAL[n + 1]:
        return None
    start = len(first) - len(b".".join(fa[i:]))
    if 45 in first[:start]:  # the field must come before the first '-'
        return None
    return start, start + len(fa[i]), n


def key_problem(key: bytes) -> str | None:
    """Why no tcprules line can produce ``key``; None when one can."""
    if 58 in key:  # ':'
        return "it contains ':', and a rules line's address ends at its first ':'"
    if 10 in key:
        return "it contains a newline, and a rules line ends at a newline"
    if key[:1] == b"#":
        return "it starts with '#', which makes a rules line a comment"
    if is_range(key) and not range_fields(key):
        return _RANGE_ONLY
    return None


_RANGE_ONLY = (
    "it contains '-' and neither '=' nor '@', so only a range line can produce it, "
    "and a range only writes keys with a number from 0 to 255 (no leading zeros) as a "
    "whole dot-separated field before the first '-'"
)


def range_address(key: bytes, start: int, end: int, high: int) -> bytes:
    """The range address that produces ``key`` and the keys after it up
    to number ``high`` in the field ``key[start:end]`` (one of
    :func:`range_fields`)."""
    return key[:end] + b"-" + DECIMAL[high] + key[end:]


def address_of(key: bytes) -> bytes:
    """An address from which tcprules produces exactly ``key``: the key
    itself, or a one-key range when tcprules would expand the key as
    written.  ValueError (the reason) when no address produces it."""
    problem = key_problem(key)
    if problem is not None:
        raise ValueError(problem)
    if not is_range(key):
        return key
    start, end, n = range_fields(key)[0]
    return range_address(key, start, end, n)


# ---- what a connection looks up -----------------------------------------------

#: The forms of a key that some connection makes tcpserver look up, each
#: from one step of docs/lookup-order.md §1: the empty key; ``=`` alone;
#: ``=host``; ``=.suffix``; an address; a prefix of one (``10.1.``);
#: ``info@address``; ``info@=host``; and ucspi-tcp6's CIDR keys (a
#: network, docs/dialects.md §4).  Who vouches for each form is
#: docs/lookup-order.md §3.
Form = Literal[
    "default", "any-name", "host", "suffix", "ip", "prefix", "ident-ip", "ident-host", "cidr"
]

_LABEL = rb"(?:[a-z0-9_-]|\\[0-7]{3})+"
_HOST = re.compile(rb"%s(?:\.%s)*\Z" % (_LABEL, _LABEL))


def is_address(text: bytes) -> bool:
    """Whether ``text`` is an IPv4 address as tcpserver writes one: four
    numbers from 0 to 255 in canonical decimal (no leading zeros), the
    text a range writes too (:data:`DECIMAL`)."""
    parts = text.split(b".")
    return len(parts) == 4 and all(p in _NUMBER for p in parts)


def is_ip_prefix(text: bytes) -> bool:
    """Whether ``text`` is a prefix tcpserver cuts from an address: one to
    three of its numbers, each followed by its ``.`` (``10.``, ``10.1.2.``)."""
    if text[-1:] != b".":
        return False
    parts = text[:-1].split(b".")
    return len(parts) <= 3 and all(p in _NUMBER for p in parts)


def is_host_name(name: bytes) -> bool:
    """Whether ``name`` is a host name as tcpserver writes one (djbdns'
    ``dns_domain_todot``): labels of lower-case letters, digits, ``-``,
    ``_`` and ``\\ooo`` escapes, joined by single dots, with no dot at
    either end."""
    return _HOST.match(name) is not None


def lookup_form(key: bytes) -> Form | None:
    """The :data:`Form` of ``key`` when some connection makes tcpserver
    look it up; None when none does (``10.0.0.0/8``, ``192.168.1``,
    ``=Mail.Example.com``, ``joe@10.``).  Only the bytes after the last
    ``@`` of an ident key are judged: the ident answer before them may be
    anything.  A key holding ``:`` is taken for an IPv6 address or prefix
    of the ucspi-tcp-ipv6 dialect and not judged further (tcprules 0.88
    writes none: :func:`key_problem`)."""
    if not key:
        return "default"
    if 64 in key:  # '@': the ident answer (which may hold '@' itself), '@', the rest
        target = key[key.rfind(b"@") + 1 :]
        if target[:1] == b"=":
            return "ident-host" if is_host_name(target[1:]) else None
        return "ident-ip" if is_address(target) or 58 in target else None
    if key[:1] == b"=":
        name = key[1:]
        if not name:
            return "any-name"
        if name[:1] != b".":
            return "host" if is_host_name(name) else None
        # '=.' itself is the root's suffix, as tcpserver writes the root.
        return "suffix" if name == b"." or is_host_name(name[1:]) else None
    if is_address(key):
        return "ip"
    if is_ip_prefix(key):
        return "prefix"
    if 58 in key:  # ':'
        return "prefix" if key.endswith((b".", b":")) else "ip"
    return None


# ---- the IPv6 dialects ---------------------------------------------------------
#
# What the forks write and look up (docs/dialects.md §3, §4).  Every
# function below takes the dialect's name; ucspi-tcp 0.88's answers are
# the functions above.

_FULL = re.compile(rb"[0-9A-F]{4}(?::[0-9A-F]{4}){7}\Z")
#: IPv6 text as a person writes it: hex digits, ':' and the dots of a
#: trailing IPv4 part (the forks' prefixes end in ':' or '.').
_IP6_TEXT = re.compile(rb"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\Z")


def is_full_form(text: bytes) -> bool:
    """Whether ``text`` is an IPv6 address in ucspi-tcp6's stored form:
    eight groups of four upper-case hex digits (39 bytes)."""
    return len(text) == 39 and _FULL.match(text) is not None


def cidr_bits(key: bytes) -> tuple[int, bytes, int] | None:
    """``(version, network bytes, prefix length)`` of a key ucspi-tcp6's
    tcprules writes for a CIDR rule (``_`` or ``^`` and one byte per bit,
    see :func:`pycdb._iptext.bits4`); None for any other key."""
    from .._iptext import LETTERS4

    body = key[1:]
    if key[:1] == b"_" and 1 <= len(body) <= 32:
        ip = bytearray(4)
        for k, c in enumerate(body):
            if c == LETTERS4[k]:
                ip[k >> 3] |= 1 << (7 - (k & 7))
            elif c != 48:
                return None
        return 4, bytes(ip), len(body)
    if key[:1] == b"^" and 1 <= len(body) <= 128:
        ip = bytearray(16)
        ones = 0
        for k, c in enumerate(body):
            if c == 96 + ones:
                ip[k >> 3] |= 1 << (7 - (k & 7))
                ones += 1
            elif c != 48:
                return None
        return 6, bytes(ip), len(body)
    return None


def _ip6(text: bytes) -> bytes | None:
    """The 16 bytes of IPv6 text written as the standard allows (Python's
    reading); None when it is no address."""
    import ipaddress

    try:
        return ipaddress.IPv6Address(text.decode("ascii")).packed
    except (UnicodeDecodeError, ValueError):
        return None


_GROUP = re.compile(rb"[0-9A-Fa-f]{1,4}\Z")
_DOTTED_PREFIX = re.compile(rb"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){1,3}\Z")


def _completions(prefix: bytes) -> Iterator[bytes]:
    """Addresses (16 bytes) whose IPv6 text might start with ``prefix``
    (ending in ``:``, cut after it): its written groups, the run of zero
    groups its ``::`` stands for in every length, and every pattern of
    zero and non-zero groups after it.  Past the prefix only whether a
    group is zero matters (it decides which run is compressed), so 0 and
    1 stand for all values: at most a few hundred candidates."""
    body = prefix[:-1]
    if body in (b"", b":"):
        left: list[bytes] = []
        right: list[bytes] = []
        has_run = True
    elif body.endswith(b":"):
        left, right, has_run = body[:-1].split(b":"), [], True
    elif b"::" in body:
        before, _, after = body.partition(b"::")
        left = before.split(b":") if before else []
        right = after.split(b":")
        has_run = True
    else:
        left, right, has_run = body.split(b":"), [], False
    if not all(_GROUP.match(g) for g in left + right):
        return
    head = [int(g, 16) for g in left]
    mid = [int(g, 16) for g in right]
    for run in range(1, 9 - len(head) - len(mid)) if has_run else [0]:
        free = 8 - len(head) - run - len(mid)
        if free < 0 or (not has_run and free == 0):
            continue
        for bits in range(1 << free):
            groups = head + [0] * run + mid + [(bits >> k) & 1 for k in range(free)]
            yield b"".join(g.to_bytes(2, "big") for g in groups)


def fefe_reach(key: bytes) -> str | None:
    """Which clients ucspi-tcp-ipv6's tcpserver looks ``key`` up for, as
    an IPv6 address or as one of its prefixes (cut after a ``:`` or a
    ``.``): ``"ip"`` (some client's address text is the key) or
    ``"prefix"`` (it starts some client's text), ``"mapped"`` when only an
    IPv4 client's ``::ffff:a.b.c.d`` (``tcpserver -6``) does, None when
    no client's does (``2001:DB8::1``, ``2001:db8:0:0::1``, ``2001:db8::``
    written ``2001:db8:0::``).  Only for IPv6-looking keys: hex digits,
    ``:`` and ``.``."""
    from .._iptext import MAPPED, fefe_fmt

    if not _IP6_TEXT.match(key):
        return None
    exact = _ip6(key)
    if exact is not None and fefe_fmt(exact) == key:
        return "mapped" if exact[:12] == MAPPED else "ip"
    if key.endswith(b"."):
        mapped = key.startswith(b"::ffff:") and _DOTTED_PREFIX.match(key[7:]) is not None
        return "mapped" if mapped else None
    if not key.endswith(b":"):
        return None
    mapped = False
    for ip in _completions(key):
        if fefe_fmt(ip).startswith(key):
            if ip[:12] != MAPPED:
                return "prefix"
            mapped = True
    return "mapped" if mapped else None


def fork_of(key: bytes) -> str | None:
    """The one IPv6 dialect whose tcprules writes ``key`` for an address
    and whose tcpserver looks it up, or None when the key says nothing
    (ucspi-tcp 0.88's keys, host names, the empty key).  ucspi-tcp6's:
    an address in the full form (``2001:0DB8:...``, also after ``info@``)
    and its CIDR keys (:func:`cidr_bits`); ucspi-tcp-ipv6's: IPv6 text in
    any other spelling without ``=`` (``2001:db8::1``, ``2001:db8:``),
    which ucspi-tcp6 would have stored in the full form.  This is what
    ``recognise`` in :mod:`pycdb.rules.dialects` counts.  (The full form
    is also what ucspi-tcp-ipv6's tcprules keeps for an address written
    in full, a rule its tcpserver never matches: docs/dialects.md §8.)"""
    from ._names import FEFE, FEH

    at = key.find(b"@")
    target = key[at + 1 :] if at >= 0 else key
    if is_full_form(target):
        return FEH
    if at < 0 and cidr_bits(key) is not None:
        return FEH
    if 61 in key or 58 not in target:  # '=' keys are kept as written by both
        return None
    if at >= 0 and 47 in target:  # 'u@ADDRESS/N': ucspi-tcp6 keeps it as written too
        return None
    return FEFE if _ip6_like(target) else None


_SLASH_N = re.compile(rb"/[0-9]{1,3}\Z")


def _ip6_like(text: bytes) -> bool:
    """Whether ``text`` is IPv6 as a person writes an address, a network
    (``ADDRESS/N``) or a prefix cut after a ``:`` or ``.`` in some
    spelling: what a rule for an IPv6 client looks like."""
    m = _SLASH_N.search(text)
    if m:
        text = text[: m.start()]
    if not _IP6_TEXT.match(text):
        return False
    if _ip6(text) is not None:
        return True
    if text.endswith(b"."):
        return text.startswith(b"::ffff:") and _DOTTED_PREFIX.match(text[7:]) is not None
    return text.endswith(b":") and next(_completions(text), None) is not None


def fork_key_problem(key: bytes, dialect: str) -> str | None:
    """Why no line of ``dialect``'s tcprules (an IPv6 fork) produces
    ``key``; None when one does.  See :func:`key_problem` for ucspi-tcp
    0.88."""
    from ._names import FEFE

    if 10 in key:
        return "it contains a newline, and a rules line ends at a newline"
    if key[:1] == b"#":
        return "it starts with '#', which makes a rules line a comment"
    if dialect == FEFE:
        for word in (b":allow", b":deny"):
            if word in key:
                return (
                    f"it contains '{word.decode()}', and an ucspi-tcp-ipv6 address ends at the "
                    "first ':' followed by 'allow' or 'deny'"
                )
        if is_range(key) and not range_fields(key):
            return _RANGE_ONLY
        return None
    if 44 in key:  # ','
        return "it contains ',', and an ucspi-tcp6 address ends before the line's first ','"
    if 61 in key:  # '='
        return None
    at = key.find(b"@")
    if at >= 0:
        target = key[at + 1 :]
        if 58 in target and 47 not in target and not is_full_form(target):
            return (
                "ucspi-tcp6 stores the IPv6 address of an ident rule in the full form "
                "(user@2001:0DB8:...), and this one is not"
            )
        return None
    if 58 in key:
        if not is_full_form(key):
            return (
                "it holds a ':' but is not an IPv6 address in the full form "
                "(2001:0DB8:0000:...), the only form ucspi-tcp6 stores one in"
            )
        return None
    if 47 in key:  # '/'
        return "ucspi-tcp6 stores ADDRESS/N as a CIDR key ('_' and bits), never as written"
    if is_range(key) and not range_fields(key):
        return _RANGE_ONLY
    return None


def fefe_prefix_of(net: IPv6Network) -> bytes | None:
    """The ucspi-tcp-ipv6 prefix key that matches exactly the addresses of
    ``net``, when there is one: its leading groups, all non-zero, each
    followed by its ``:`` (``2001:db8:`` is 2001:db8::/32).  A zero
    group among them may or may not be the run tcpserver compresses,
    depending on the rest of the address, so no prefix covers such a
    network, nor one cut inside a group."""
    if net.prefixlen % 16 or not 16 <= net.prefixlen <= 112:
        return None
    packed = net.network_address.packed
    lead = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, net.prefixlen // 8, 2)]
    if 0 in lead:
        return None
    return b"".join(b"%x:" % g for g in lead)


def fefe_prefix_network(text: bytes) -> IPv6Network | None:
    """The IPv6 network whose addresses are exactly those whose
    ucspi-tcp-ipv6 text starts with the prefix ``text``, when there is
    one (the inverse of :func:`fefe_prefix_of`): one to seven non-zero
    groups in tcpserver's spelling, each followed by its ``:``."""
    if not text.endswith(b":") or text.endswith(b"::"):
        return None
    groups = text[:-1].split(b":")
    if not 1 <= len(groups) <= 7:
        return None
    if not all(_GROUP.match(g) and g == b"%x" % int(g, 16) and int(g, 16) for g in groups):
        return None
    packed = b"".join(int(g, 16).to_bytes(2, "big") for g in groups) + bytes(16)
    return IPv6Network((packed[:16], 16 * len(groups)))
