"""The rules language of the two IPv6 forks of ucspi-tcp, line by line:
where a line's address ends, and the keys an address adds
(docs/dialects.md §2, §3).  ucspi-tcp 0.88's own language is
:mod:`pycdb.rules.language`; everything not said here (skipped lines,
trimming, the action and instructions, the data, ranges) is the same,
and is done by the same code.

**ucspi-tcp-ipv6** (Debian's package, Felix von Leitner's patch): the
address is everything before the first ``:`` that is followed by
``allow`` or ``deny``, so ``2001:db8::1:allow`` has the address
``2001:db8::1``; it is then a key as in 0.88 (ranges included), byte for
byte, never parsed as an address.  A line with no such colon, even a
blank or a line without any ``:``, makes that tcprules loop for ever
(checked; the recorded vectors say ``"hang"``): pycdb refuses it
(:data:`~pycdb.rules.messages.E_HANG`).

**ucspi-tcp6** (fehQlibs' ucspi-tcp6, 1.11): the address is everything
before the *last* ``:`` that comes before the line's first ``,``, or
before that ``,`` when no ``:`` does (so ``=a.example,allow`` is a rule);
a line with neither ``:`` nor ``,`` is skipped.  Then, in this order: an
address with ``=`` is a key as it is; one with ``@`` is too, unless it
also has a ``:`` and no ``/``, when the part after the first ``@`` is an
IPv6 address stored in the full form (``joe@2001:0DB8:...``); an
address with ``:`` is an IPv6 address (full form) or, with ``/N``, an
IPv6 CIDR rule (``^`` and a bit string, N from 1 to 128); one with
``/N`` and no ``:`` an IPv4 CIDR rule (``_`` and a bit string, N from 1
to 32; the address read by ``ip4_scan``, leniently); one with ``-`` a
range as in 0.88; anything else a key as it is.  Every refusal exits
101 there, not 100.
"""

from __future__ import annotations

from .._iptext import bits4, bits6, full_form, ip4_scan, ip6_scan
from ..errors import LineRefused
from .language import Parsed, _number, action_and_env, expand, trim
from .messages import E_HANG, E_IP6, E_IP6CIDR, E_PREFIXLEN, E_PREFIXNUM

__all__ = [
    "FEFE_ACTIONS",
    "Parsed",
    "fefe_colon",
    "fefe_line",
    "feh_colon",
    "feh_keys_of",
    "feh_line",
]

#: What must follow the colon that ends an ucspi-tcp-ipv6 address.
FEFE_ACTIONS = (b"allow", b"deny")


def fefe_colon(line: bytes) -> int:
    """Where the address of a trimmed ucspi-tcp-ipv6 line ends: the first
    ``:`` followed by ``allow`` or ``deny``; -1 when there is none (that
    tcprules then loops for ever)."""
    pos = line.find(b":")
    while pos >= 0:
        if line.startswith(FEFE_ACTIONS, pos + 1):
            return pos
        pos = line.find(b":", pos + 1)
    return -1


def fefe_line(line: bytes) -> Parsed | None:
    """An ucspi-tcp-ipv6 line (without its newline): None for a comment or
    an empty line; raises ``LineRefused`` where that tcprules refuses the
    line or never finishes."""
    if not line or line[0] == 35:  # '#'
        return None
    line = trim(line)
    colon = fefe_colon(line)
    if colon < 0:
        raise LineRefused(E_HANG, 0)
    action, env, data = action_and_env(line, colon)
    address = line[:colon]
    return address, action, tuple(env), data, tuple(expand(address))


def feh_colon(line: bytes) -> int | None:
    """Where the address of a trimmed ucspi-tcp6 line ends: the last
    ``:`` before the first ``,``, or that ``,`` when no ``:`` comes before
    it; None for a line with neither (skipped)."""
    comma = line.find(b",")
    if comma < 0:
        comma = len(line)
    colon = line.rfind(b":", 0, comma)
    if colon < 0:
        if comma == len(line):
            return None
        colon = comma
    return colon


def _prefix(address: bytes, slash: int, most: int) -> int:
    """The prefix length after the ``/`` at ``slash``, as ucspi-tcp6's
    ``getnum`` reads it (digits to the end or to a NUL, mod 2**64)."""
    n = _number(address[slash + 1 :])
    if n is None:
        raise LineRefused(E_PREFIXNUM, slash + 1)
    if n > most:
        raise LineRefused(E_PREFIXLEN, slash + 1)
    return n


def feh_keys_of(address: bytes) -> list[bytes]:
    """The keys ucspi-tcp6's tcprules adds for ``address`` (its
    ``doaddressdata``); raises ``LineRefused`` where it refuses it (the
    position is in the address, which starts the line)."""
    if 61 in address:  # '='
        return [address]
    ipv6 = 58 in address  # ':'
    slash = address.find(b"/")
    at = address.find(b"@")
    if at >= 0:
        if ipv6 and slash < 0:
            n, raw = ip6_scan(address[at + 1 :])
            if not n:
                raise LineRefused(E_IP6, at + 1)
            return [address[: at + 1] + full_form(raw)]
        return [address]
    if not ipv6:
        if slash >= 0:
            prefix = _prefix(address, slash, 32)
            if prefix == 0:
                raise LineRefused(E_PREFIXLEN, slash + 1)
            return [b"_" + bits4(ip4_scan(address[:slash])[1], prefix)]
        return expand(address)
    if slash >= 0:
        prefix = _prefix(address, slash, 128)
        n, raw = ip6_scan(address[:slash])
        if not n or prefix == 0:
            raise LineRefused(E_IP6CIDR, 0)
        return [b"^" + bits6(raw, prefix)]
    n, raw = ip6_scan(address)
    if not n:
        raise LineRefused(E_IP6, 0)
    return [full_form(raw)]


def feh_line(line: bytes) -> Parsed | None:
    """An ucspi-tcp6 line (without its newline): None for a line that
    tcprules skips; raises ``LineRefused`` where it refuses the line."""
    if not line or line[0] == 35:  # '#'
        return None
    line = trim(line)
    colon = feh_colon(line)
    if colon is None:
        return None
    action, env, data = action_and_env(line, colon)
    address = line[:colon]
    return address, action, tuple(env), data, tuple(feh_keys_of(address))
