"""The tcprules language (ucspi-tcp 0.88), in pure Python: the reference.

Every decision here follows ``tcprules.c`` byte for byte (docs/rules-language.md),
including its less obvious ones, which the differential tests pin against
the real program:

* input splits at ``\\n`` only; a last line without one still counts;
* a line whose first byte is ``#``, and an empty line, are skipped before
  anything else, so a comment is never trimmed and never checked;
* only trailing newline, space and tab are trimmed: a trailing ``\\r``
  stays, and makes a rule line (one with a ``:``) an error, while a CRLF
  comment or a CRLF line without ``:`` is still skipped;
* a line with no ``:`` is skipped silently, blank or not;
* the instructions are checked before the address, so ``1-x:allowjunk``
  is refused for the junk, not for the range;
* a range bound is read like ``scan_ulong`` reads a NUL-terminated copy:
  digits, then the end of the text *or a NUL byte* (an embedded NUL ends
  the number); the empty text is 0; the value wraps modulo 2**64 (C's
  unsigned long) before a high bound above 255 becomes 255.

The cffi backend does the same in ``src_c/rules_parse.c``; both report a
refused line as an error code and a byte position, and :func:`reason`
turns those into the one message both backends give.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Callable, Union, cast

from .._files import open_read
from ..errors import LineRefused, RulesSyntaxError
from .data import Action, Env, encode, pick_delimiter
from .forms import is_range
from .messages import E_ACTION, E_HIGH, E_INSTR, E_LOW, E_NODELIM, E_NOEQ, E_UNTERM, reason
from .reading import CHUNK, FileChunks, gather, lines

__all__ = [
    "Parsed",
    "Rule",
    "Source",
    "action_and_env",
    "classic_line",
    "expand",
    "parse",
    "parse_chunks",
    "parse_line",
    "range_bounds",
    "source_chunks",
    "syntax_error",
    "trim",
]

#: What :func:`parse` and :func:`pycdb.rules.compile` read: a path, the
#: text as bytes, a binary file object, or an iterable of lines (bytes,
#: str, or :class:`Rule`).
Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Iterable[Any]]

_U64 = (1 << 64) - 1

#: A parsed line: (address, action, env, data, keys).
Parsed = tuple[bytes, Action, tuple[tuple[bytes, bytes], ...], bytes, tuple[bytes, ...]]


@dataclass(frozen=True)
class Rule:
    """One rules line, as tcprules reads it.

    ``address`` is the text before the first ``:`` (a range such as
    ``10.0.0.1-9`` stays as written); ``keys`` are the cdb keys the line
    adds, in order, each with ``data`` as its value; ``env`` holds the
    ``,NAME=VALUE`` instructions in line order.  ``lineno`` counts from 1
    (0 for a rule made with :meth:`make`).
    """

    lineno: int
    address: bytes
    action: Action
    env: Env
    keys: tuple[bytes, ...]
    data: bytes
    #: The dialect whose tcprules reads the line (pycdb.rules.dialects).
    dialect: str = "ucspi-tcp"

    @classmethod
    def make(
        cls,
        address: bytes | str,
        action: str = "allow",
        env: Iterable[tuple[bytes | str, bytes | str]] = (),
        *,
        lineno: int = 0,
        dialect: str | None = None,
    ) -> Rule:
        """A rule built from its parts, for tools that edit rules without
        writing text: ``Rule.make("10.0.0.", "allow", [("RELAYCLIENT", "")])``.
        ``str`` is encoded as UTF-8; ``dialect`` (a name of
        :mod:`pycdb.rules.dialects`, by default ucspi-tcp 0.88) says which
        tcprules reads it, and so which keys it adds
        (``Rule.make("2001:db8::/32", dialect="ucspi-tcp6").keys`` is the
        CIDR key).  Raises ValueError for parts that no rules line of the
        dialect can express (see :meth:`line`)."""
        from .dialects import get

        lang = get(dialect)
        addr = _b(address)
        problem = lang.address_problem(addr)
        if problem is not None:
            raise ValueError(f"{problem}: {addr!r}")
        pairs = tuple((_b(n), _b(v)) for n, v in env)
        data = encode(action, pairs)
        try:
            keys = tuple(lang.keys(addr))
        except LineRefused as exc:
            if exc.code in (E_LOW, E_HIGH):
                bound = "low" if exc.code == E_LOW else "high"
                raise ValueError(
                    f"{addr!r} is a range (it has a '-' and no '=' or '@') whose {bound} bound "
                    "is not a number"
                ) from None
            why = reason(exc.code, addr + b":allow", exc.pos, lang.name)
            raise ValueError(
                f"{lang.name}'s tcprules refuses the address {addr!r}: {why}"
            ) from None
        rule = cls(
            lineno, addr, "deny" if action == "deny" else "allow", pairs, keys, data, lang.name
        )
        rule.line()  # refuse now what could not be written back
        return rule

    def line(self) -> bytes:
        """The rule as a tcprules line (without the newline) that parses
        back to the same address, action and instructions.  Each value is
        enclosed in ``"`` unless it holds one; then another byte it does
        not use."""
        parts = [self.address, b":", self.action.encode()]
        for i, (name, value) in enumerate(self.env):
            d = pick_delimiter(value, last=i == len(self.env) - 1)
            if d is None:
                raise ValueError("a value uses every byte, leaving none to delimit it")
            q = bytes((d,))
            parts += (b",", name, b"=", q, value, q)
        return b"".join(parts)


def _b(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"rules text is bytes or str, not {type(value).__name__}")


# ---- the language ---------------------------------------------------------


def _number(text: bytes) -> int | None:
    """scan_ulong on a NUL-terminated copy of text: the value of its
    leading digits (mod 2**64, as C's unsigned long wraps) when the digits
    reach the end of the text or a NUL byte; None otherwise."""
    if text.isdigit() and len(text) < 20:  # the usual case: plain, no wrap
        return int(text)
    n = 0
    for c in text:
        if 48 <= c <= 57:
            n = (n * 10 + c - 48) & _U64  # masked each step: no huge integers
        elif c == 0:
            break
        else:
            return None
    return n


_DECIMAL = [b"%d" % n for n in range(256)]
#: The numbers of a range's "LOW-HIGH" text, for the ranges seen lately
#: (real files repeat a few, such as 1-254): a bounded cache.
_RANGES: dict[bytes, list[bytes]] = {}


def expand(address: bytes) -> list[bytes]:
    """The keys tcprules adds for ``address``: the address itself, or
    one key per number of a range (``1.2.3.4-6``; only when the address
    holds neither ``=`` nor ``@``).  Raises ``LineRefused`` (E_LOW, E_HIGH) for
    a bound that is not a number."""
    # Byte tests spelled as integers: `45 in b` is a memchr, while
    # `b"-" in b` goes through the buffer protocol and costs ten times more.
    if 45 not in address or 61 in address or 64 in address:  # forms.is_range, inlined
        return [address]
    dash = address.find(b"-")
    left = address.rfind(b".", 0, dash) + 1
    right = address.find(b".", dash + 1)
    if right < 0:
        right = len(address)
    bounds = address[left:right]
    numbers = _RANGES.get(bounds)
    if numbers is None:
        low = _number(address[left:dash])
        if low is None:
            raise LineRefused(E_LOW, left)
        high = _number(address[dash + 1 : right])
        if high is None:
            raise LineRefused(E_HIGH, dash + 1)
        # A high bound above 255 counts as 255; low above high is nothing.
        numbers = _DECIMAL[low : min(high, 255) + 1]
        if len(_RANGES) >= 4096:
            _RANGES.clear()
        _RANGES[bounds] = numbers
    prefix = address[:left]
    suffix = address[right:]
    if suffix:
        return [prefix + n + suffix for n in numbers]
    return [prefix + n for n in numbers]


def range_bounds(address: bytes) -> tuple[int, int] | None:
    """The (low, high) numbers of the range in ``address`` as tcprules
    reads them, before a high bound above 255 is cut to 255; None when the
    address is not a range (see :func:`expand`, which this agrees with:
    the keys are the numbers from low to ``min(high, 255)``).  For tools
    that explain a range, e.g. one that adds no key.  Raises ValueError
    for a bound that is not a number (tcprules refuses the line)."""
    if not is_range(address):
        return None
    dash = address.find(b"-")
    left = address.rfind(b".", 0, dash) + 1
    right = address.find(b".", dash + 1)
    if right < 0:
        right = len(address)
    low = _number(address[left:dash])
    high = _number(address[dash + 1 : right])
    if low is None or high is None:
        raise ValueError(f"{address!r} is a range whose bounds are not both numbers")
    return low, high


def action_and_env(line: bytes, colon: int) -> tuple[Action, list[tuple[bytes, bytes]], bytes]:
    """The action, instructions and record data of the text after the
    colon; raises ``LineRefused`` where tcprules would give up."""
    n = len(line)
    p = colon + 1
    if line.startswith(b"deny", p):
        action: Action = "deny"
        parts = [b"D\0"]
        p += 4
    elif line.startswith(b"allow", p):
        action = "allow"
        parts = []
        p += 5
    else:
        raise LineRefused(E_ACTION, p)
    env = []
    while p < n:
        if line[p] != 44:  # ','
            raise LineRefused(E_INSTR, p)
        eq = line.find(b"=", p)
        if eq < 0:
            raise LineRefused(E_NOEQ, p)
        q = eq + 1
        if q == n:
            raise LineRefused(E_NODELIM, q)
        end = line.find(line[q : q + 1], q + 1)
        if end < 0:
            raise LineRefused(E_UNTERM, q)
        name = line[p + 1 : eq]
        value = line[q + 1 : end]
        env.append((name, value))
        parts += (b"+", name, b"=", value, b"\0")
        p = end + 1
    return action, env, b"".join(parts)


def trim(line: bytes) -> bytes:
    return line.rstrip(b" \t\n")


def classic_line(line: bytes) -> Parsed | None:
    """ucspi-tcp 0.88's tcprules on one line (without its newline):
    ``(address, action, env, data, keys)``, or None for a line it skips
    (a comment, a line without ``:``); raises
    :class:`pycdb.errors.LineRefused` where it refuses the line."""
    if not line or line[0] == 35:  # '#'
        return None
    line = trim(line)
    colon = line.find(b":")
    if colon < 0:
        return None
    action, env, data = action_and_env(line, colon)
    address = line[:colon]
    return address, action, tuple(env), data, tuple(expand(address))


def _parse_line(line: bytes, lineno: int) -> Rule | None:
    """The rule on one input line (without its newline), or None for a
    line tcprules skips."""
    parsed = classic_line(line)
    if parsed is None:
        return None
    address, action, env, data, keys = parsed
    return Rule(lineno, address, action, env, keys, data)


def _line_parser(dialect: str | None) -> Callable[[bytes, int], Rule | None]:
    """:func:`_parse_line` for ``dialect`` (None: ucspi-tcp 0.88)."""
    from .dialects import CLASSIC, get

    lang = get(dialect)
    if lang.name == CLASSIC:
        return _parse_line
    parse = lang.parse_line
    name = lang.name

    def parse_fork(line: bytes, lineno: int) -> Rule | None:
        parsed = parse(line)
        if parsed is None:
            return None
        address, action, env, data, keys = parsed
        return Rule(lineno, address, action, env, keys, data, name)

    return parse_fork


def parse_line(
    line: bytes, lineno: int = 1, filename: str = "<line>", *, dialect: str | None = None
) -> Rule | None:
    """The rule on one line of rules text (without its newline), exactly
    as :func:`parse` reads it there, or None for a line tcprules skips (a
    comment, an empty line, a line without ``:``); raises
    :class:`pycdb.RulesSyntaxError` where tcprules gives up.  For tools
    that look at every line, such as a linter that carries on past a
    refused line where :func:`parse` (like tcprules) stops.  ``dialect``
    as for :func:`parse`."""
    try:
        return _line_parser(dialect)(line, lineno)
    except LineRefused as bad:
        raise syntax_error(filename, lineno, line, bad, dialect) from None


def syntax_error(
    filename: str, lineno: int, line: bytes, bad: LineRefused, dialect: str | None = None
) -> RulesSyntaxError:
    """The :class:`pycdb.RulesSyntaxError` for a refused line (its reason
    worded for ``dialect``, by default ucspi-tcp 0.88)."""
    line = trim(line)
    return RulesSyntaxError(
        filename, lineno, line, reason(bad.code, line, bad.pos, dialect or "ucspi-tcp")
    )


def parse_chunks(
    chunks: Iterable[bytes], filename: str, dialect: str | None = None
) -> Iterator[Rule]:
    """The rules in a byte stream given in chunks."""
    parse = _line_parser(dialect)
    lineno = 0
    for lineno, line in enumerate(lines(chunks), 1):  # noqa: B007
        try:
            rule = parse(line, lineno)
        except LineRefused as bad:
            raise syntax_error(filename, lineno, line, bad, dialect) from None
        if rule is not None:
            yield rule


# ---- sources --------------------------------------------------------------


def _line_chunks(items: Iterable[Any]) -> Iterator[bytes]:
    """Lines (bytes, str or Rule), each with its newline supplied when
    missing, gathered into chunks."""

    def line_of(item: Any) -> bytes:
        line = item.line() if isinstance(item, Rule) else _b(item)
        return line if line.endswith(b"\n") else line + b"\n"

    return gather(map(line_of, items), CHUNK)


def source_chunks(source: Source, filename: str | None = None) -> tuple[str, Iterable[bytes]]:
    """(name for messages, chunks) of a source: a path (opened now), bytes,
    a binary file object, or an iterable of lines (bytes, str or Rule:
    one item per line, the newline optional)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return filename or "<bytes>", [bytes(source)]
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        fd, _ = open_read(path, streams=True)  # never waits at open on a FIFO
        return filename or path, FileChunks(os.fdopen(fd, "rb"), close=True)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        stream = cast("IO[bytes]", source)
        return filename or (name if isinstance(name, str) else "<file>"), FileChunks(
            stream, close=False
        )
    return filename or "<lines>", _line_chunks(source)


def parse(
    source: Source, *, filename: str | None = None, dialect: str | None = None
) -> Iterator[Rule]:
    """The rules of ``source``, in order, one :class:`Rule` per line that
    tcprules would compile (comments, blank lines and lines without a
    ``:`` yield nothing).  Raises :class:`pycdb.RulesSyntaxError` at the
    first line tcprules refuses, naming the file, line and reason.

    ``source`` is a path, the text as bytes, a binary file object, or an
    iterable of lines (bytes, str or Rule; newlines optional).  It is read
    as a stream: memory does not grow with the number of lines.

    ``dialect`` names the tcprules whose language the text is in
    (:mod:`pycdb.rules.dialects`): ``"ucspi-tcp"`` (0.88, the default),
    ``"ucspi-tcp-ipv6"`` (Debian's ucspi-tcp-ipv6; a line it would loop
    on for ever is refused) or ``"ucspi-tcp6"`` (fehQlibs' ucspi-tcp6,
    whose CIDR and IPv6 rules give :attr:`Rule.keys` in its stored
    forms).  ValueError for an unknown name."""
    _line_parser(dialect)  # an unknown dialect is a ValueError now, not at the first line
    name, chunks = source_chunks(source, filename)
    return parse_chunks(chunks, name, dialect)
