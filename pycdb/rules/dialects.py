"""The three dialects of the tcprules language, and telling them apart.

ucspi-tcp 0.88 has no IPv6; qmail sites that take IPv6 connections run
one of two forks, whose rules differ from 0.88's and from each other
(docs/dialects.md):

* ``ucspi-tcp`` (:data:`CLASSIC`, the default): djb's ucspi-tcp 0.88,
  Debian's ``ucspi-tcp`` (docs/rules-language.md, docs/lookup-order.md);
* ``ucspi-tcp-ipv6`` (:data:`FEFE`): 0.88 with Felix von Leitner's IPv6
  patch, Debian's ``ucspi-tcp-ipv6``;
* ``ucspi-tcp6`` (:data:`FEH`): Erwin Hoffmann's ucspi-tcp6 (fehQlibs), 1.11.

A :class:`Dialect` is everything pycdb needs to speak one: where a line's
address ends and which keys it adds (tcprules), which keys a connection
tries (tcpserver's rules check), how tcprulescheck prints the deciding
key, how the dialect's tcpserver writes a client's address, and which
keys its tcprules can write at all.  :func:`get` gives one by name;
:func:`recognise` tells, from a database's keys, whether only one fork
can have written it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter
from collections.abc import Container, Iterable, Iterator
from typing import Union

from .._iptext import MAPPED, bits_to_ip4_text, bits_to_ip6_text, fefe_fmt, feh_fmt
from .._keyorder import UNBOUNDED, rules_keys
from .._keyorder6 import fefe_keys, feh_keys
from .._text import quote
from ..errors import DialectError
from . import forms
from ._names import CLASSIC, FEFE, FEH, NAMES, DialectName
from .language import Parsed, classic_line, expand
from .language6 import fefe_colon, fefe_line, feh_colon, feh_keys_of, feh_line

__all__ = [
    "CLASSIC",
    "DEFAULT",
    "FEFE",
    "FEH",
    "NAMES",
    "Address",
    "Dialect",
    "DialectName",
    "Recognition",
    "client_address",
    "get",
    "recognise",
]

#: The dialect every ``dialect=`` and ``--dialect`` defaults to.
DEFAULT: DialectName = CLASSIC

#: What :meth:`Dialect.client_text` takes: an address in any spelling
#: (``str`` or ``bytes`` text, an :mod:`ipaddress` object) or a socket
#: address tuple, ``(host, port)`` or ``(host, port, flowinfo, scope_id)``.
Address = Union[str, bytes, ipaddress.IPv4Address, ipaddress.IPv6Address, tuple[object, ...]]

_IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def client_address(value: Address) -> _IP | None:
    """The address ``value`` names, whatever its spelling: text
    (``"2001:DB8::1"``, ``"::ffff:192.0.2.1"``, a scope as in
    ``"fe80::1%eth0"`` dropped, as tcpserver never sees one), an
    :mod:`ipaddress` object, or a socket address tuple (its first item).
    None for text that is no address (``"1..2"``): the caller uses such
    text as it is, as tcprulescheck does.  TypeError for a tuple of
    another length, or a value of another type."""
    if isinstance(value, tuple):
        if len(value) not in (2, 4):
            raise TypeError(
                "a socket address is (host, port) or (host, port, flowinfo, scope_id), "
                f"not a {len(value)}-tuple"
            )
        value = value[0]  # type: ignore[assignment]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    elif isinstance(value, str):
        text = value
    else:
        raise TypeError(f"an address is str, bytes or a socket address, not {type(value).__name__}")
    text = text.partition("%")[0] if ":" in text else text
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class Dialect:
    """One dialect of the tcprules language (this class is ucspi-tcp
    0.88's; :func:`get` gives the others).  Its methods take and give
    bytes, as the programs do."""

    #: ``--dialect``'s name for it.
    name: DialectName = CLASSIC
    #: The programs, for people.
    title = "ucspi-tcp 0.88"
    #: tcprules' exit code for a line it refuses.
    syntax_exit = 100
    #: tcprulescheck's TCPREMOTEIP when it is unset.
    default_ip = b"0.0.0.0"

    def parse_line(self, line: bytes) -> Parsed | None:
        """``(address, action, env, data, keys)`` of one line (without its
        newline), or None for a line tcprules skips; raises
        :class:`pycdb.errors.LineRefused` where it refuses the line."""
        return classic_line(line)

    def keys(self, address: bytes) -> list[bytes]:
        """The keys tcprules adds for ``address``; ``LineRefused`` when it
        refuses it."""
        return expand(address)

    def address_end(self, line: bytes) -> int | None:
        """Where the address of a trimmed line ends (the ``:`` or ``,``
        after it); None when the line is skipped, -1 when the dialect's
        tcprules never finishes it."""
        colon = line.find(b":")
        return None if colon < 0 else colon

    def address_problem(self, address: bytes) -> str | None:
        """Why ``address`` cannot be written at the start of a rules line
        followed by ``:allow`` (None when it can)."""
        if b":" in address or b"\n" in address:
            return "an address cannot contain ':' or a newline"
        if address[:1] == b"#":
            return "an address starting with '#' would make a comment"
        return None

    def lookup_keys(
        self,
        ip: bytes,
        host: bytes | None,
        info: bytes | None,
        longest: int = UNBOUNDED,
        cidr_lengths: Container[int] | None = None,
    ) -> Iterator[bytes]:
        """The keys tcpserver and tcprulescheck try, in order, for
        ``TCPREMOTEIP`` text ``ip`` used as given (see
        :mod:`pycdb._keyorder`)."""
        return rules_keys(ip, host, info, longest)

    def rule_shown(self, key: bytes | None) -> bytes:
        """tcprulescheck's first line for the deciding ``key`` (None: no
        key matched), without its newline: ``rule KEY:`` or ``default:``."""
        return b"default:" if key is None else b"rule " + key + b":"

    def client_text(self, address: _IP, mapped_as_ipv6: bool = False) -> bytes:
        """``TCPREMOTEIP`` as this dialect's tcpserver writes it for a
        client at ``address``.  0.88 has no IPv6: an IPv4-mapped address
        (a dual-stack socket's IPv4 client) is that IPv4 client, any other
        IPv6 address a :class:`pycdb.errors.DialectError` naming the
        dialects that take it."""
        if address.version == 4:
            return str(address).encode()
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped).encode()
        raise DialectError(
            f"{address} is an IPv6 address, and ucspi-tcp 0.88's tcpserver has no IPv6: no "
            "rules database of that dialect is ever asked about one; for a database built by "
            "an IPv6 tcprules, use the dialect 'ucspi-tcp-ipv6' (Debian's ucspi-tcp-ipv6) or "
            "'ucspi-tcp6' (fehQlibs' ucspi-tcp6)"
        )

    def key_problem(self, key: bytes) -> str | None:
        """Why no line of this dialect's tcprules produces ``key``."""
        return forms.key_problem(key)

    def address_for(self, key: bytes) -> bytes:
        """An address from which this dialect's tcprules produces exactly
        ``key`` (the key itself, a one-key range, a CIDR network);
        ValueError (the reason) when none does."""
        return forms.address_of(key)

    def __repr__(self) -> str:
        return f"<pycdb dialect {self.name}>"


class _Fefe(Dialect):
    """ucspi-tcp-ipv6: Debian's package of 0.88 with Felix von Leitner's
    IPv6 patch."""

    name = FEFE
    title = "ucspi-tcp-ipv6 (ucspi-tcp 0.88 with Felix von Leitner's IPv6 patch)"

    def parse_line(self, line: bytes) -> Parsed | None:
        return fefe_line(line)

    def address_end(self, line: bytes) -> int | None:
        return fefe_colon(line)

    def address_problem(self, address: bytes) -> str | None:
        if b"\n" in address:
            return "an address cannot contain a newline"
        if address[:1] == b"#":
            return "an address starting with '#' would make a comment"
        for word in (b":allow", b":deny"):
            if word in address:
                return (
                    f"an ucspi-tcp-ipv6 address cannot contain '{word.decode()}': it ends at "
                    "the first ':' followed by 'allow' or 'deny'"
                )
        return None

    def lookup_keys(
        self,
        ip: bytes,
        host: bytes | None,
        info: bytes | None,
        longest: int = UNBOUNDED,
        cidr_lengths: Container[int] | None = None,
    ) -> Iterator[bytes]:
        return fefe_keys(ip, host, info, longest)

    def client_text(self, address: _IP, mapped_as_ipv6: bool = False) -> bytes:
        """tcpserver's ``ip6_fmt`` (:func:`pycdb._iptext.fefe_fmt`); an
        IPv4-mapped address is the dotted quad unless ``mapped_as_ipv6``
        (``tcpserver -6``), which writes any IPv4 client ``::ffff:a.b.c.d``."""
        if address.version == 4:
            if mapped_as_ipv6:
                return fefe_fmt(MAPPED + address.packed)
            return str(address).encode()
        packed = address.packed
        if packed[:12] == MAPPED and not mapped_as_ipv6:
            return str(ipaddress.IPv4Address(packed[12:])).encode()
        return fefe_fmt(packed)

    def key_problem(self, key: bytes) -> str | None:
        return forms.fork_key_problem(key, FEFE)

    def address_for(self, key: bytes) -> bytes:
        problem = self.key_problem(key)
        if problem is not None:
            raise ValueError(problem)
        if not forms.is_range(key):
            return key
        start, end, n = forms.range_fields(key)[0]
        return forms.range_address(key, start, end, n)


class _Feh(Dialect):
    """ucspi-tcp6: Erwin Hoffmann's ucspi-tcp6 on fehQlibs."""

    name = FEH
    title = "ucspi-tcp6 (fehQlibs' ucspi-tcp6 1.11)"
    syntax_exit = 101
    default_ip = b"0"

    def parse_line(self, line: bytes) -> Parsed | None:
        return feh_line(line)

    def keys(self, address: bytes) -> list[bytes]:
        return feh_keys_of(address)

    def address_end(self, line: bytes) -> int | None:
        return feh_colon(line)

    def address_problem(self, address: bytes) -> str | None:
        if b"\n" in address:
            return "an address cannot contain a newline"
        if address[:1] == b"#":
            return "an address starting with '#' would make a comment"
        if b"," in address:
            return "an ucspi-tcp6 address cannot contain ',': it ends before the first ','"
        return None

    def lookup_keys(
        self,
        ip: bytes,
        host: bytes | None,
        info: bytes | None,
        longest: int = UNBOUNDED,
        cidr_lengths: Container[int] | None = None,
    ) -> Iterator[bytes]:
        return feh_keys(ip, host, info, longest, cidr_lengths)

    def rule_shown(self, key: bytes | None) -> bytes:
        """ucspi-tcp6's tcprulescheck prints a CIDR key as its network
        (``rule 10./8:``, ``rule 2001:db8::/32:``; see
        :func:`pycdb._iptext.bits_to_ip4_text`) and the empty key as
        ``default:``, like no key at all."""
        if not key:
            return b"default:"
        shown = None
        if key[:1] == b"^":
            shown = bits_to_ip6_text(key)
        elif key[:1] == b"_":
            shown = bits_to_ip4_text(key)
        return b"rule " + (key if shown is None else shown) + b":"

    def client_text(self, address: _IP, mapped_as_ipv6: bool = False) -> bytes:
        """tcpserver writes an IPv4-mapped client as the dotted quad, any
        other IPv6 client with fehQlibs' ``ip6_fmt``; the rules check
        then reads it back into the full form, so the spelling does not
        matter."""
        if mapped_as_ipv6:
            raise ValueError("tcpserver -6 (mapped_as_ipv6) is ucspi-tcp-ipv6's option")
        if address.version == 4:
            return str(address).encode()
        packed = address.packed
        if packed[:12] == MAPPED:
            return str(ipaddress.IPv4Address(packed[12:])).encode()
        return feh_fmt(packed)

    def key_problem(self, key: bytes) -> str | None:
        return forms.fork_key_problem(key, FEH)

    def address_for(self, key: bytes) -> bytes:
        """A CIDR key's network (``10.0.0.0/8``, ``2001:db8::/32``), which
        tcprules turns back into the key; any other key as for 0.88."""
        problem = self.key_problem(key)
        if problem is not None:
            raise ValueError(problem)
        cidr = forms.cidr_bits(key)
        if cidr is not None:
            version, network, prefix = cidr
            address = ipaddress.ip_address(network)
            return f"{address}/{prefix}".encode()
        if 58 in key or 47 in key or not forms.is_range(key):
            return key
        start, end, n = forms.range_fields(key)[0]
        return forms.range_address(key, start, end, n)


_DIALECTS: dict[str, Dialect] = {d.name: d for d in (Dialect(), _Fefe(), _Feh())}


def get(dialect: str | Dialect | None = None) -> Dialect:
    """The :class:`Dialect` named ``dialect`` (one of :data:`NAMES`; None
    is :data:`DEFAULT`); ValueError naming the choices for any other."""
    if isinstance(dialect, Dialect):
        return dialect
    found = _DIALECTS.get(DEFAULT if dialect is None else dialect)
    if found is None:
        raise ValueError(
            f"unknown dialect {dialect!r}: the dialects are {', '.join(NAMES)} "
            f"(the default, {DEFAULT}, is ucspi-tcp 0.88)"
        )
    return found


# ---- recognition ---------------------------------------------------------------

#: Keys kept as examples of each fork's evidence.
_EXAMPLES = 3


@dataclasses.dataclass
class Recognition:
    """What a database's keys say about its dialect.

    ``dialect`` is the one fork whose keys it holds (None when it holds
    none, or both's); ``counts`` how many keys point at each fork, with a
    few of them in ``examples``.  :meth:`describe` says it in a sentence."""

    dialect: DialectName | None = None
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    examples: dict[str, list[bytes]] = dataclasses.field(default_factory=dict)

    def add(self, key: bytes) -> None:
        """Count one key (:func:`pycdb.rules.forms.fork_of`)."""
        fork = forms.fork_of(key)
        if fork is None:
            return
        self.counts[fork] += 1
        seen = self.examples.setdefault(fork, [])
        if len(seen) < _EXAMPLES and key not in seen:
            seen.append(key)
        forks = [name for name in (FEFE, FEH) if self.counts[name]]
        self.dialect = forks[0] if len(forks) == 1 else None

    @property
    def mixed(self) -> bool:
        """Keys of both forks: no one dialect wrote them all."""
        return bool(self.counts[FEFE] and self.counts[FEH])

    def _evidence(self, fork: str) -> str:
        n = self.counts[fork]
        shown = ", ".join(quote(k, 48) for k in self.examples.get(fork, []))
        what = "a key" if n == 1 else f"{n} keys"
        how = (
            "IPv6 text as written (ucspi-tcp6 would have stored the full form)"
            if fork == FEFE
            else "IPv6 addresses in the full form or CIDR bit strings"
        )
        return f"{what} only {fork}'s tcprules writes ({how}: {shown})"

    def describe(self) -> str:
        """The recognition in words, for a note to the user."""
        if self.mixed:
            return (
                f"its keys are of two dialects: {self._evidence(FEFE)}, and "
                f"{self._evidence(FEH)}; no one tcprules wrote them all"
            )
        if self.dialect is not None:
            return f"recognised as {self.dialect}: {self._evidence(self.dialect)}"
        return (
            "no key only an IPv6 fork writes: read as ucspi-tcp 0.88 (any dialect reads "
            "these keys alike for IPv4 clients)"
        )


def recognise(keys: Iterable[bytes]) -> Recognition:
    """What the keys of a database (in any order) say about the dialect
    that wrote it (see :class:`Recognition`)."""
    found = Recognition()
    for key in keys:
        if 58 in key or key[:1] in (b"_", b"^"):  # the only keys that can say anything
            found.add(key)
    return found
