"""Rules text from one dialect to another, where the meaning survives:
``pycdb convert --from D1 --to D2`` (docs/dialects.md §7).

A rule's meaning is which connections it decides, at which step of the
dialect's key order (docs/lookup-order.md §1, docs/dialects.md §4).  Each
line is read as the source dialect's tcprules reads it and written as the
target's reads it back:

* comments and empty lines stay; a line the source skips (no ``:``, or a
  blank one) becomes a comment, since ucspi-tcp-ipv6's tcprules would
  loop on it for ever;
* the action and instructions are copied as written (every dialect reads
  them alike); the address is rewritten so that the target's tcprules
  stores keys its tcpserver looks up for the same clients: the same key
  where the two read it alike (IPv4 addresses, prefixes, ranges, host
  names, ident rules); an IPv6 address in the target's spelling; an
  ucspi-tcp6 CIDR network as the ucspi-tcp-ipv6 prefix or the IPv4
  prefix or range that covers exactly its addresses, and back.

Where no address of the target means the same, the line is refused, with
its number and why (:class:`pycdb.errors.DialectError`): an IPv6 rule
for ucspi-tcp 0.88, which has no IPv6; a rule that never matches in one
dialect and would in the other (``10.0.0.0/8`` in 0.88, ``2001:DB8::1``
in ucspi-tcp-ipv6); a network no prefix covers exactly; a network whose
expansion would change which rule wins for some client (another rule for
overlapping addresses, or, for one expanded into single addresses, a
``=host`` rule, which ucspi-tcp6 tries before its CIDR keys but 0.88
after an address).  tcpserver is assumed to run without ucspi-tcp-ipv6's
``-6``, so a ``::ffff:a.b.c.d`` rule, which only ``-6`` makes match, is
refused too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Iterator

from .._iptext import MAPPED, fefe_fmt
from ..errors import DialectError, LineRefused
from ._names import CLASSIC, FEFE, FEH
from .cidr import classic_address
from .dialects import Dialect, get
from .forms import cidr_bits, fefe_prefix_network, fefe_prefix_of, fefe_reach, is_full_form
from .language import syntax_error, trim
from .reading import lines

__all__ = ["convert"]

_Net = ipaddress.IPv4Network


@dataclasses.dataclass
class _Line:
    """One line of the source: its number, the text as it came, and for a
    rule the address, the text after the address's end, and the keys."""

    lineno: int
    raw: bytes
    address: bytes | None = None
    rest: bytes = b""
    keys: tuple[bytes, ...] = ()


def _read(chunks: Iterable[bytes], source: Dialect, filename: str) -> list[_Line]:
    """Every line of the text, rules parsed as ``source`` parses them;
    RulesSyntaxError at a line it refuses (the text is not its)."""
    out = []
    for lineno, raw in enumerate(lines(chunks), 1):
        try:
            parsed = source.parse_line(raw)
        except LineRefused as bad:
            raise syntax_error(filename, lineno, raw, bad, source.name) from None
        if parsed is None:
            out.append(_Line(lineno, raw))
            continue
        line = trim(raw)
        end = source.address_end(line)
        assert end is not None and end >= 0  # parse_line found it
        out.append(_Line(lineno, raw, parsed[0], line[end + 1 :], parsed[4]))
    return out


def _ipv4_blocks(rules: list[_Line], source: Dialect) -> list[tuple[_Net, int, str]]:
    """The IPv4 clients each rule decides by address, as networks: (block,
    line, what), for exact addresses, dotted prefixes and CIDR keys."""
    blocks = []
    for r in rules:
        for key in r.keys:
            net = _ipv4_block(key, source)
            if net is not None:
                blocks.append((net[0], r.lineno, net[1]))
    return blocks


def _ipv4_block(key: bytes, source: Dialect) -> tuple[_Net, str] | None:
    """The IPv4 network a key matches by address, and its kind
    ("address", "prefix" or "network"); None for any other key."""
    if source.name == FEH:
        found = cidr_bits(key)
        if found is not None and found[0] == 4:
            return ipaddress.IPv4Network((found[1], found[2])), "network"
    parts = key.split(b".")
    if key.endswith(b".") and 1 < len(parts) <= 4:
        octets = parts[:-1]
        kind = "prefix"
    elif len(parts) == 4:
        octets = parts
        kind = "address"
    else:
        return None
    if not all(p.isdigit() and p == b"%d" % int(p) and int(p) < 256 for p in octets):
        return None
    packed = bytes(int(p) for p in octets) + bytes(4 - len(octets))
    return ipaddress.IPv4Network((packed, 8 * len(octets))), kind


class _Converter:
    def __init__(self, source: Dialect, target: Dialect, filename: str, rules: list[_Line]):
        self.source = source
        self.target = target
        self.filename = filename
        self.rules = [r for r in rules if r.address is not None]
        self._blocks: list[tuple[_Net, int, str]] | None = None
        self.hosts = [r.lineno for r in self.rules if any(_is_host(k) for k in r.keys)]

    def refuse(self, line: _Line, why: str) -> DialectError:
        shown = trim(line.raw).decode("utf-8", "backslashreplace")
        return DialectError(
            f"{self.filename}:{line.lineno}: cannot write this {self.source.name} rule in "
            f"{self.target.name}: {shown}: {why}"
        )

    def blocks(self) -> list[tuple[_Net, int, str]]:
        if self._blocks is None:
            self._blocks = _ipv4_blocks(self.rules, self.source)
        return self._blocks

    def line(self, line: _Line) -> bytes:
        """The target's line for ``line``, without its newline."""
        if line.address is None:
            raw = line.raw
            if not raw or raw[0] == 35 or not trim(raw):
                return b"" if raw[:1] != b"#" else raw
            return b"#" + raw  # skipped by the source: a comment says so everywhere
        address = self.address(line, line.address)
        problem = self.target.address_problem(address)
        if problem is not None:
            raise self.refuse(line, problem)
        return address + b":" + line.rest

    def address(self, line: _Line, address: bytes) -> bytes:
        """The target's address for the source's rule ``line``."""
        source, target = self.source.name, self.target.name
        keys = line.keys
        if source == FEH and len(keys) == 1 and cidr_bits(keys[0]) is not None:
            return self.network(line, keys[0])
        if 58 in address and 61 not in address:
            return self.ipv6(line, address)
        if target == FEH:
            if 47 in address and 61 not in address and 64 not in address:
                raise self.refuse(
                    line,
                    f"{address.decode('ascii', 'replace')} is a key of its own in {source}, which "
                    "no client address equals, and ucspi-tcp6 would read it as a CIDR network "
                    "that matches; to keep that rule, expand it first (pycdb make --expand-cidr "
                    "writes the same addresses as 0.88 prefixes and ranges), or delete it",
                )
            if any(cidr_bits(k) is not None for k in keys):
                raise self.refuse(
                    line,
                    "its key is spelled like an ucspi-tcp6 CIDR key ('_' or '^' and bits), which "
                    "ucspi-tcp6's tcpserver would look up for a whole network",
                )
        return address

    def ipv6(self, line: _Line, address: bytes) -> bytes:
        """An address holding a ``:`` (an IPv6 rule, or an ident rule for one)."""
        source, target = self.source.name, self.target.name
        at = address.rfind(b"@") if source == FEFE else address.find(b"@")
        user, target_text = (address[: at + 1], address[at + 1 :]) if at >= 0 else (b"", address)
        if at >= 0 and 58 not in target_text:  # the ':' is the ident answer's
            raise self.refuse(
                line,
                "its ident answer holds ':', which "
                + (
                    "ends the address of an ucspi-tcp 0.88 rule"
                    if target == CLASSIC
                    else f"makes {target}'s tcprules read the address as IPv6 (another key)"
                ),
            )
        if target == CLASSIC:
            raise self.refuse(
                line, "ucspi-tcp 0.88 has no IPv6, so no rule of it decides an IPv6 client"
            )
        if at >= 0 and 64 in user[:-1]:
            raise self.refuse(line, "an ident answer holding '@' is split otherwise by ucspi-tcp6")
        if at >= 0 and 47 in target_text:
            return address  # an ident rule for a network: a key of its own, dead in both
        if source == FEFE:
            reach = fefe_reach(target_text)
            if reach is None:
                raise self.refuse(
                    line,
                    "this key never matches in ucspi-tcp-ipv6 (its tcpserver never writes that "
                    "text; pycdb lint says what it writes), and would in ucspi-tcp6, which reads "
                    "the address in any spelling",
                )
            if reach == "mapped":
                raise self.refuse(line, _MAPPED)
            if at >= 0 or not target_text.endswith(b":"):
                if reach != "ip":
                    raise self.refuse(line, _IDENT_PREFIX)
                return user + target_text
            # Cut after a ':', the key is a prefix (and, ending in '::', an address too).
            net = fefe_prefix_network(target_text)
            if net is None:
                raise self.refuse(
                    line,
                    "ucspi-tcp6 has no prefixes of IPv6 text, and no CIDR network covers exactly "
                    "the addresses whose ucspi-tcp-ipv6 text starts with this one",
                )
            return str(net).encode()
        # ucspi-tcp6 to ucspi-tcp-ipv6: the key is the full form (or kept as written).
        key = line.keys[0]
        stored = key[len(user) :] if at >= 0 else key
        if not is_full_form(stored):
            return address  # an ident rule for a network: a key of its own in both
        packed = bytes.fromhex(stored.replace(b":", b"").decode())
        if packed[:12] == MAPPED:
            raise self.refuse(line, _MAPPED)
        text = fefe_fmt(packed)
        if at < 0 and text.endswith(b":"):
            raise self.refuse(
                line,
                f"ucspi-tcp-ipv6's tcpserver writes this address {text.decode()}, and there a key "
                "ending in ':' is also a prefix, which matches every address written starting "
                "so, not this one alone",
            )
        return user + text

    def network(self, line: _Line, key: bytes) -> bytes:
        """An ucspi-tcp6 CIDR key, for a dialect without CIDR."""
        found = cidr_bits(key)
        assert found is not None
        version, network, prefix = found
        if prefix == 1:
            raise self.refuse(line, "ucspi-tcp6 never tries a /1 key: this rule never matches")
        if version == 6:
            if self.target.name == CLASSIC:
                raise self.refuse(line, "ucspi-tcp 0.88 has no IPv6")
            net6 = ipaddress.IPv6Network((network, prefix))
            if prefix >= 96 and network[:12] == MAPPED:
                raise self.refuse(line, _MAPPED)
            if prefix == 128:
                if self.hosts:
                    raise self.refuse(
                        line,
                        f"{net6} becomes an address rule in ucspi-tcp-ipv6, which its tcpserver "
                        f"tries before '=host' rules, and ucspi-tcp6 tries after them (line "
                        f"{self.hosts[0]} has one); a client with that name would get another rule",
                    )
                return fefe_fmt(network)
            text = fefe_prefix_of(net6)
            if text is None:
                raise self.refuse(
                    line,
                    f"no prefix of ucspi-tcp-ipv6's address text covers exactly {net6}: a prefix "
                    "ends after a whole group (/16, /32, ... /112), and a zero group among them "
                    "is written '::' or not depending on the zero groups after it",
                )
            return text
        net = ipaddress.IPv4Network((network, prefix))
        self.check_overlap(line, net)
        return classic_address(net)[0]

    def check_overlap(self, line: _Line, net: _Net) -> None:
        """Refuse an ucspi-tcp6 network whose expansion into prefixes or
        addresses would change which rule some client gets."""
        for other, lineno, kind in self.blocks():
            if lineno == line.lineno or not net.overlaps(other):
                continue
            raise self.refuse(
                line,
                f"{net} overlaps the {kind} rule on line {lineno} ({other}); ucspi-tcp6 tries "
                "every dotted prefix before any CIDR key and the longest CIDR key first, "
                f"while {self.target.name} would try the expanded prefixes by length, and "
                "the first line for a key, so some clients would get another rule",
            )
        if net.prefixlen > 24 and self.hosts:
            raise self.refuse(
                line,
                f"{net} becomes single addresses in {self.target.name}, which its tcpserver "
                f"tries before '=host' rules, and ucspi-tcp6 tries after them (line "
                f"{self.hosts[0]} has one); a client with that name would get another rule",
            )


_IDENT_PREFIX = (
    "an ident rule is looked up for the client's whole address, and this is no address as "
    "ucspi-tcp-ipv6's tcpserver writes one, so it never matches there; ucspi-tcp6 would read it "
    "in any spelling"
)

_MAPPED = (
    "a rule for ::ffff:a.b.c.d matches only under ucspi-tcp-ipv6's tcpserver -6, and ucspi-tcp6's "
    "tcpserver writes such a client a.b.c.d: write the rule for the IPv4 address instead"
)


def _is_host(key: bytes) -> bool:
    """An ``=host`` key (not ``=``, not a suffix): tried right after the
    address."""
    return key[:1] == b"=" and len(key) > 1 and key[1:2] != b"."


def convert(
    chunks: Iterable[bytes], source: str, target: str, filename: str = "<text>"
) -> Iterator[bytes]:
    """The rules text in ``chunks`` (``source``'s language) in ``target``'s
    language, one line for each line, ending in a newline (see the module
    docstring).  The whole text is read first (a network's expansion
    depends on the other rules), so an error comes before any line:
    RulesSyntaxError for a line ``source`` refuses,
    :class:`pycdb.errors.DialectError` naming the first line whose meaning
    does not survive."""
    src, dst = get(source), get(target)
    read = _read(chunks, src, filename)
    conv = _Converter(src, dst, filename, read)
    out = [conv.line(line) + b"\n" for line in read]
    return iter(out)
