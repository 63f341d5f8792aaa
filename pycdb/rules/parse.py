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
from itertools import repeat
from typing import IO, TYPE_CHECKING, Any, Callable, Union, cast

from ..errors import RulesSyntaxError, TooLargeError
from .data import Action, Env, encode, pick_delimiter

if TYPE_CHECKING:
    from ..writer import Writer

__all__ = [
    "Rule",
    "Source",
    "compile",
    "compile_into",
    "expand",
    "parse",
    "parse_line",
    "range_bounds",
    "reason",
]

#: What :func:`parse` and :func:`compile` read: a path, the text as
#: bytes, a binary file object, or an iterable of lines (bytes, str, or
#: :class:`Rule`).
Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Iterable[Any]]

CHUNK = 1 << 16

# Why a line was refused.  The same numbers are PYCDB_RULES_E* in
# src_c/pycdb.h (a test checks they agree).
E_ACTION = 1  # neither 'allow' nor 'deny' right after the first ':'
E_INSTR = 2  # something other than ',' where an instruction must start
E_NOEQ = 3  # ',NAME' without '='
E_NODELIM = 4  # ',NAME=' at the end of the line: no value delimiter
E_UNTERM = 5  # the value's closing delimiter is missing
E_LOW = 6  # a range's low bound is not a number
E_HIGH = 7  # a range's high bound is not a number

_U64 = (1 << 64) - 1


class _Bad(Exception):
    """A refused line: the code and the byte position in the trimmed line."""

    def __init__(self, code: int, pos: int) -> None:
        super().__init__(code, pos)
        self.code = code
        self.pos = pos


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

    @classmethod
    def make(
        cls,
        address: bytes | str,
        action: str = "allow",
        env: Iterable[tuple[bytes | str, bytes | str]] = (),
        *,
        lineno: int = 0,
    ) -> Rule:
        """A rule built from its parts, for tools that edit rules without
        writing text: ``Rule.make("10.0.0.", "allow", [("RELAYCLIENT", "")])``.
        ``str`` is encoded as UTF-8.  Raises ValueError for parts that no
        rules line can express (see :meth:`line`)."""
        addr = _b(address)
        if b":" in addr or b"\n" in addr:
            raise ValueError(f"an address cannot contain ':' or a newline: {addr!r}")
        if addr[:1] == b"#":
            raise ValueError(f"an address starting with '#' would make a comment: {addr!r}")
        pairs = tuple((_b(n), _b(v)) for n, v in env)
        data = encode(action, pairs)
        try:
            keys = tuple(expand(addr))
        except _Bad as exc:
            bound = "low" if exc.code == E_LOW else "high"
            raise ValueError(
                f"{addr!r} is a range (it has a '-' and no '=' or '@') whose {bound} bound "
                "is not a number"
            ) from None
        rule = cls(lineno, addr, "deny" if action == "deny" else "allow", pairs, keys, data)
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
    holds neither ``=`` nor ``@``).  Raises ``_Bad`` (E_LOW, E_HIGH) for
    a bound that is not a number."""
    # Byte tests spelled as integers: `45 in b` is a memchr, while
    # `b"-" in b` goes through the buffer protocol and costs ten times more.
    if 45 not in address or 61 in address or 64 in address:  # '-', '=', '@'
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
            raise _Bad(E_LOW, left)
        high = _number(address[dash + 1 : right])
        if high is None:
            raise _Bad(E_HIGH, dash + 1)
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
    if 45 not in address or 61 in address or 64 in address:  # '-', '=', '@'
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


def _rest(line: bytes, colon: int) -> tuple[Action, list[tuple[bytes, bytes]], bytes]:
    """The action, instructions and record data of the text after the
    colon; raises ``_Bad`` where tcprules would give up."""
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
        raise _Bad(E_ACTION, p)
    env = []
    while p < n:
        if line[p] != 44:  # ','
            raise _Bad(E_INSTR, p)
        eq = line.find(b"=", p)
        if eq < 0:
            raise _Bad(E_NOEQ, p)
        q = eq + 1
        if q == n:
            raise _Bad(E_NODELIM, q)
        end = line.find(line[q : q + 1], q + 1)
        if end < 0:
            raise _Bad(E_UNTERM, q)
        name = line[p + 1 : eq]
        value = line[q + 1 : end]
        env.append((name, value))
        parts += (b"+", name, b"=", value, b"\0")
        p = end + 1
    return action, env, b"".join(parts)


def _trim(line: bytes) -> bytes:
    return line.rstrip(b" \t\n")


def _parse_line(line: bytes, lineno: int) -> Rule | None:
    """The rule on one input line (without its newline), or None for a
    line tcprules skips."""
    if not line or line[0] == 35:  # '#'
        return None
    line = _trim(line)
    colon = line.find(b":")
    if colon < 0:
        return None
    action, env, data = _rest(line, colon)
    address = line[:colon]
    return Rule(lineno, address, action, tuple(env), tuple(expand(address)), data)


def parse_line(line: bytes, lineno: int = 1, filename: str = "<line>") -> Rule | None:
    """The rule on one line of rules text (without its newline), exactly
    as :func:`parse` reads it there, or None for a line tcprules skips (a
    comment, an empty line, a line without ``:``); raises
    :class:`pycdb.RulesSyntaxError` where tcprules gives up.  For tools
    that look at every line, such as a linter that carries on past a
    refused line where :func:`parse` (like tcprules) stops."""
    try:
        return _parse_line(line, lineno)
    except _Bad as bad:
        raise _error(filename, lineno, line, bad) from None


def blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A byte stream given in chunks, cut into blocks of whole lines: each
    block is ``count(b"\\n") + 1`` lines joined by ``\\n``, without the
    newline after the last (a last line without one included).  Only a
    partial line is carried between chunks, and a comment line is never
    held at all: a long one costs no memory.  (A comment cut by a chunk's
    end is given as ``b"#"``: it is skipped whatever follows.)"""
    carry: list[bytes] = []
    skipping = False  # inside a comment line that began in an earlier chunk
    for chunk in chunks:
        if not chunk:
            continue
        start = 0
        if carry or skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                if not skipping:
                    carry.append(chunk)
                continue
            if skipping:
                yield b"#"
                skipping = False
            else:
                carry.append(chunk[:nl])
                yield b"".join(carry)
                carry = []
            start = nl + 1
        last = chunk.rfind(b"\n")
        if last >= start:
            yield chunk[start:last]
            start = last + 1
        if start < len(chunk):
            if chunk[start] == 35:
                skipping = True
            else:
                carry.append(chunk[start:])
    if skipping:
        yield b"#"
    elif carry:
        yield b"".join(carry)


def lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream given in chunks, each without its
    newline (see :func:`blocks`)."""
    for block in blocks(chunks):
        yield from block.split(b"\n")


def _error(filename: str, lineno: int, line: bytes, bad: _Bad) -> RulesSyntaxError:
    line = _trim(line)
    return RulesSyntaxError(filename, lineno, line, reason(bad.code, line, bad.pos))


def parse_chunks(chunks: Iterable[bytes], filename: str) -> Iterator[Rule]:
    """The rules in a byte stream given in chunks."""
    lineno = 0
    for lineno, line in enumerate(lines(chunks), 1):  # noqa: B007
        try:
            rule = _parse_line(line, lineno)
        except _Bad as bad:
            raise _error(filename, lineno, line, bad) from None
        if rule is not None:
            yield rule


_CACHE_SIZE = 4096


def _bulk(block: bytes, cache: dict[bytes, bytes]) -> tuple[list[bytes], list[bytes]]:
    """(keys, data) of every record of a block of lines, in order.  The
    data of the text after the colon, which repeats from line to line in
    real files, comes from ``cache`` (keyed by the untrimmed text: only
    blanks are trimmed, so the first ':' never moves).  Raises ``_Bad`` if
    any line is refused, without saying which (see :func:`_slow`)."""
    keys: list[bytes] = []
    values: list[bytes] = []
    key = keys.append
    value = values.append
    get = cache.get
    lines = block.split(b"\n")
    if block[:1] == b"#" or b"\n#" in block:
        lines = [line for line in lines if line[:1] != b"#"]
    # An empty line, or one without ':', has no separator.
    for address, colon, rest in map(bytes.partition, lines, repeat(b":")):
        if not colon:
            continue
        data = get(rest)
        if data is None:
            data = _rest(b":" + rest.rstrip(b" \t"), 0)[2]
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[rest] = data
        if 45 in address:  # '-': perhaps a range (see expand)
            expanded = expand(address)
            keys += expanded
            values += [data] * len(expanded)
        else:
            key(address)
            value(data)
    return keys, values


def _slow(block: bytes, lineno: int, add: Callable[[bytes, bytes], None], filename: str) -> int:
    """Compile a block one line and one record at a time, so an error
    names its line and happens where tcprules meets it (a record that
    does not fit before a bad line, or the other way round).  ``lineno``
    is the number of the line before the block."""
    records = 0
    for line in block.split(b"\n"):
        lineno += 1
        if not line or line[0] == 35:  # '#'
            continue
        line = _trim(line)
        colon = line.find(b":")
        if colon < 0:
            continue
        try:
            data = _rest(line, colon)[2]
            keys = expand(line[:colon])
        except _Bad as bad:
            raise _error(filename, lineno, line, bad) from None
        for key in keys:
            try:
                add(key, data)
            except TooLargeError as exc:
                raise TooLargeError(f"{filename}:{lineno}: {exc}") from None
            records += 1
    return records


#: Bytes of text per add_many call: bulk work pays per block, not per line.
_BULK = 1 << 18


def _gather(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The same stream in chunks of at least ``size`` bytes (but the last)."""
    parts: list[bytes] = []
    have = 0
    for chunk in chunks:
        parts.append(chunk)
        have += len(chunk)
        if have >= size:
            yield b"".join(parts)
            parts = []
            have = 0
    if parts:
        yield b"".join(parts)


def compile_chunks(
    chunks: Iterable[bytes],
    add: Callable[[bytes, bytes], None],
    filename: str,
    add_many: Callable[[list[bytes], list[bytes]], None] | None = None,
) -> int:
    """The pure backend's compiler: the records of the rules in ``chunks``,
    in tcprules' order, given to ``add(key, data)`` or, a block of lines
    at a time, to ``add_many(keys, datas)`` (all or nothing); returns the
    number of records.  A block that fails in bulk, for a refused line or
    a record past the size limit, is redone line by line for the exact
    error."""
    records = 0
    lineno = 0
    cache: dict[bytes, bytes] = {}
    if add_many is not None:
        chunks = _gather(chunks, _BULK)
    for block in blocks(chunks):
        if add_many is not None:
            try:
                keys, values = _bulk(block, cache)
                add_many(keys, values)
            except (_Bad, TooLargeError):
                pass
            else:
                records += len(keys)
                lineno += block.count(b"\n") + 1
                continue
        records += _slow(block, lineno, add, filename)
        lineno += block.count(b"\n") + 1
    return records


# ---- messages -------------------------------------------------------------


def show(text: bytes) -> str:
    """Bytes as printable text: UTF-8 where it decodes, control bytes and
    the rest as \\xNN escapes, so a message can never move the cursor."""
    out = []
    for ch in text.decode("utf-8", "backslashreplace"):
        if ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _found(line: bytes, pos: int) -> str:
    if pos >= len(line):
        return "the end of the line"
    c = line[pos]
    if c == 32:
        return "a space"
    if c == 9:
        return "a tab"
    if c == 13:
        return "a carriage return"
    return f"'{show(line[pos : pos + 1])}'"


_CR = (
    "the line ends with a carriage return: the file has DOS (CRLF) line endings, which "
    "tcprules refuses; convert it with dos2unix or tr -d '\\r'"
)


def reason(code: int, line: bytes, pos: int) -> str:
    """Why tcprules refuses ``line`` (trimmed), given the error code and
    byte position both backends report."""
    cr_at_end = line.endswith(b"\r")
    if cr_at_end and pos == len(line) - 1 and code in (E_ACTION, E_INSTR, E_NODELIM):
        return _CR
    col = pos + 1
    if code == E_ACTION:
        word = line[pos:].split(b",", 1)[0][:24]
        text = (
            f"expected 'allow' or 'deny' right after the first ':' (column {col}), "
            f"found '{show(word)}'"
            if word
            else "expected 'allow' or 'deny' after the first ':', found the end of the line"
        )
        after = line[pos:]
        if after.lstrip(b" \t").startswith((b"allow", b"deny")):
            text += " (nothing may come between the ':' and the word)"
        elif after.lower().startswith((b"allow", b"deny")):
            text += " (the words are lower case)"
        elif b":" in after:
            text += (
                " (the address is everything before the first ':', so it cannot contain "
                "one: tcprules 0.88 has no IPv6 syntax)"
            )
    elif code == E_INSTR:
        text = (
            f"expected the end of the line or an instruction ',NAME=\"VALUE\"' at column "
            f"{col}, found {_found(line, pos)}"
        )
        if line[pos:].lstrip(b" \t").startswith(b"#"):
            text += " (a comment must be a line of its own, starting with '#')"
        elif line[pos : pos + 1] in (b" ", b"\t"):
            text += " (no blanks are allowed between instructions)"
    elif code == E_NOEQ:
        text = (
            f"the instruction at column {col} has no '=': expected ',NAME=' and a "
            "delimited value, as in ',RELAYCLIENT=\"\"'"
        )
    elif code == E_NODELIM:
        text = (
            f"expected a delimiter (such as '\"') to open the value after '=' at column "
            f"{pos}, found the end of the line"
        )
    elif code == E_UNTERM:
        d = show(line[pos : pos + 1])
        text = (
            f"the value opened by '{d}' at column {col} is not closed: no second '{d}' on the line"
        )
        if line[pos] in (32, 9):
            text += " (trailing blanks are trimmed before the line is read)"
    elif code in (E_LOW, E_HIGH):
        dash = line.index(b"-")
        if code == E_LOW:
            bound, which = line[pos:dash], "low"
        else:
            end = line.find(b".", pos, line.index(b":"))
            bound, which = line[pos : end if end >= 0 else line.index(b":")], "high"
        text = (
            f"the {which} bound '{show(bound)}' of the range at column {col} is not a "
            "number: an address with '-' (and no '=' or '@') is a range of one octet, "
            "as in 10.0.0.1-99, and both bounds must be digits"
        )
    else:  # pragma: no cover - both backends only report the codes above
        text = f"error code {code} at column {col}"
    if cr_at_end:
        text += "; also, " + _CR
    return text


# ---- sources --------------------------------------------------------------


class _FileChunks:
    """The chunks of a file opened now (so a missing file fails before
    anything is created) and closed when read to the end or dropped."""

    def __init__(self, f: IO[bytes], close: bool) -> None:
        self._f = f
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        try:
            read = self._f.read
            while True:
                chunk = read(CHUNK)
                if not chunk:
                    return
                if not isinstance(chunk, bytes):
                    raise TypeError("rules files are read as bytes: open them in binary mode")
                yield chunk
        finally:
            if self._close:
                self._f.close()


def _line_chunks(items: Iterable[Any]) -> Iterator[bytes]:
    """Lines (bytes, str or Rule), each with its newline supplied when
    missing, gathered into chunks."""

    def line_of(item: Any) -> bytes:
        line = item.line() if isinstance(item, Rule) else _b(item)
        return line if line.endswith(b"\n") else line + b"\n"

    return _gather(map(line_of, items), CHUNK)


def source_chunks(source: Source, filename: str | None = None) -> tuple[str, Iterable[bytes]]:
    """(name for messages, chunks) of a source: a path (opened now), bytes,
    a binary file object, or an iterable of lines (bytes, str or Rule:
    one item per line, the newline optional)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return filename or "<bytes>", [bytes(source)]
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return filename or path, _FileChunks(open(path, "rb"), close=True)  # noqa: SIM115
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        stream = cast("IO[bytes]", source)
        return filename or (name if isinstance(name, str) else "<file>"), _FileChunks(
            stream, close=False
        )
    return filename or "<lines>", _line_chunks(source)


def parse(source: Source, *, filename: str | None = None) -> Iterator[Rule]:
    """The rules of ``source``, in order, one :class:`Rule` per line that
    tcprules would compile (comments, blank lines and lines without a
    ``:`` yield nothing).  Raises :class:`pycdb.RulesSyntaxError` at the
    first line tcprules refuses, naming the file, line and reason.

    ``source`` is a path, the text as bytes, a binary file object, or an
    iterable of lines (bytes, str or Rule; newlines optional).  It is read
    as a stream: memory does not grow with the number of lines."""
    name, chunks = source_chunks(source, filename)
    return parse_chunks(chunks, name)


def compile(  # noqa: A001 - the verb of the domain, as in tcprules
    source: Source,
    cdb_path: str | os.PathLike[str],
    *,
    tmp_path: str | os.PathLike[str] | None = None,
    filename: str | None = None,
) -> int:
    """Build ``cdb_path`` from rules text, byte-identical to ``tcprules
    cdb_path tmp_path < text``, and publish it atomically; returns the
    number of records.  On any error nothing is published and the
    temporary file is removed.  ``source`` is read as for :func:`parse`,
    so a tool can edit rules as :class:`Rule` objects and rebuild::

        rules = [r for r in parse("/etc/tcp.smtp") if r.address != b"10.0.0.7"]
        rules.insert(0, Rule.make("10.0.0.7", "deny"))
        compile(rules, "/etc/tcp.smtp.cdb")

    The active backend does the work (the cffi one parses in C)."""
    from ..writer import Writer

    name, chunks = source_chunks(source, filename)
    writer = Writer(cdb_path, tmp_path=tmp_path)
    try:
        count = compile_into(writer, chunks, name)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return count


def compile_into(writer: Writer, chunks: Iterable[bytes], filename: str) -> int:
    """Add the records of rules text given in chunks to an open
    :class:`pycdb.Writer` (not committed: the caller decides); returns
    their number.  The backend the Writer bound to does the work: the C
    core's compiler, or this module's reference one feeding its maker."""
    impl, maker = writer._backend_maker()
    if impl.RulesCompiler is None:
        return compile_chunks(chunks, maker.add, filename, maker.add_many)

    def refused(lineno: int, line: bytes, code: int, pos: int) -> Exception:
        return RulesSyntaxError(filename, lineno, line, reason(code, line, pos))

    compiler = impl.RulesCompiler(maker, refused)
    try:
        for chunk in chunks:
            compiler.feed(chunk)
        return compiler.end()
    except TooLargeError as exc:
        raise TooLargeError(f"{filename}:{compiler.line()}: {exc}") from None
