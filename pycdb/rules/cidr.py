"""CIDR networks in ucspi-tcp 0.88's rules, which have no CIDR: ``pycdb
make --expand-cidr`` (docs/dialects.md §6).

tcprules 0.88 keeps ``10.0.0.0/12`` as a key of its own, which no client
address ever equals.  The same addresses are written in 0.88's language
as prefixes and ranges (docs/rules-language.md §7), and one line always
does: a network whose length is a multiple of 8 is one prefix
(``10.0.0.0/8`` is ``10.``, ``/32`` the address itself), any other spans
part of one octet, which a range of that octet covers (``10.0.0.0/12``
is ``10.0-15.``: 16 prefixes; ``192.0.2.0/25`` is ``192.0.2.0-127``: 128
addresses), and ``/0`` is every first octet, ``0-255.``.  A client
matches the expansion exactly when its address is in the network
(tests/test_cidr.py holds it to Python's :mod:`ipaddress`), and at step
4 of tcpserver's order (docs/lookup-order.md §1), where the prefixes are,
so it keeps its place among the rules.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Iterator

from ..errors import LineRefused, RulesSyntaxError
from .language import action_and_env, trim
from .reading import lines

__all__ = ["Expanded", "classic_address", "expand_cidr"]

_CIDR = re.compile(rb"([0-9]{1,3}(?:\.[0-9]{1,3}){3})/([0-9]{1,2})\Z")


@dataclasses.dataclass(frozen=True)
class Expanded:
    """One network rewritten: its line, the address as written, the 0.88
    address that replaced it, and how many keys that adds."""

    lineno: int
    network: bytes
    address: bytes
    keys: int


def classic_address(network: ipaddress.IPv4Network) -> tuple[bytes, int]:
    """The ucspi-tcp 0.88 address (a prefix, an address, or a range of
    one octet) that matches exactly the addresses of ``network``, and the
    number of keys tcprules adds for it."""
    octets = network.network_address.packed
    whole, rest = divmod(network.prefixlen, 8)
    head = b"".join(b"%d." % o for o in octets[:whole])
    if rest == 0:
        if whole == 4:
            return head[:-1], 1
        if whole == 0:
            return b"0-255.", 256
        return head, 1
    low = octets[whole]
    high = low + (1 << (8 - rest)) - 1
    return head + b"%d-%d" % (low, high) + (b"." if whole < 3 else b""), high - low + 1


def _network(address: bytes) -> ipaddress.IPv4Network | None | str:
    """The IPv4 network written ``address`` (A.B.C.D/N), None when the
    address holds no ``/`` (or is a host name), or why it is none."""
    if 47 not in address or 61 in address:  # '/', '='
        return None
    if 64 in address:  # '@'
        return (
            "an ident rule names one whole address (tcpserver looks up "
            "'user@' and the client's address), so a network cannot be expanded there"
        )
    m = _CIDR.match(address)
    if not m:
        return "it is not an IPv4 network written A.B.C.D/N, with the four numbers of its address"
    try:
        return ipaddress.IPv4Network(address.decode("ascii"))
    except ValueError as exc:
        if "host bits set" in str(exc):
            net = ipaddress.IPv4Network(address.decode("ascii"), strict=False)
            return f"its address has bits set past the /{m.group(2).decode()}: write {net}"
        return f"it is not an IPv4 network ({exc})"


def expand_cidr(
    chunks: Iterable[bytes], filename: str, expanded: list[Expanded]
) -> Iterator[bytes]:
    """The rules text in ``chunks`` with each ``A.B.C.D/N`` address
    rewritten to the 0.88 address that matches the same clients
    (:func:`classic_address`), as lines ending in a newline, one for each
    line of the text (so line numbers stay); each rewrite is appended to
    ``expanded``.  A line tcprules refuses anyway is left for the
    compiler to report.  Raises RulesSyntaxError for an address with a
    ``/`` that is no network (an ident rule's, ``10.0.0.1/8``, ``10/8``)."""
    for lineno, raw in enumerate(lines(chunks), 1):
        if not raw or raw[0] == 35:  # '#'
            yield raw + b"\n"
            continue
        line = trim(raw)
        colon = line.find(b":")
        network = None if colon < 0 else _network(line[:colon])
        if network is None:
            yield raw + b"\n"
            continue
        try:
            action_and_env(line, colon)
        except LineRefused:
            yield raw + b"\n"  # refused for its own reasons: the compiler says which
            continue
        if isinstance(network, str):
            raise RulesSyntaxError(
                filename,
                lineno,
                line,
                f"--expand-cidr cannot expand {line[:colon].decode('ascii', 'replace')!r}: "
                f"{network}",
            )
        address, count = classic_address(network)
        expanded.append(Expanded(lineno, line[:colon], address, count))
        yield address + raw[raw.find(b":") :] + b"\n"
