"""Why tcprules refuses a line, in words: the one place the compiler's
error codes (``E_*`` here, ``PYCDB_RULES_E*`` in the C core) become
messages, the same for both backends."""

from __future__ import annotations

from .._text import show
from ._names import CLASSIC, FEFE, FEH

# Why a line was refused.  The same numbers are PYCDB_RULES_E* in
# src_c/pycdb.h (a test checks they agree).
E_ACTION = 1  # neither 'allow' nor 'deny' right after the first ':'
E_INSTR = 2  # something other than ',' where an instruction must start
E_NOEQ = 3  # ',NAME' without '='
E_NODELIM = 4  # ',NAME=' at the end of the line: no value delimiter
E_UNTERM = 5  # the value's closing delimiter is missing
E_LOW = 6  # a range's low bound is not a number
E_HIGH = 7  # a range's high bound is not a number
# The IPv6 dialects' refusals (their compilers run in Python on both
# backends, so these have no C twin).
E_HANG = 8  # ucspi-tcp-ipv6: no ':allow' or ':deny' (its tcprules loops for ever)
E_PREFIXNUM = 9  # ucspi-tcp6: the text after '/' is not a number
E_PREFIXLEN = 10  # ucspi-tcp6: a prefix length out of range (0, or past 32 or 128)
E_IP6 = 11  # ucspi-tcp6: an address with ':' that is no IPv6 address
E_IP6CIDR = 12  # ucspi-tcp6: an IPv6 CIDR rule whose address does not parse, or /0


def _start(line: bytes, pos: int) -> int:
    """The first byte of the UTF-8 character that holds byte ``pos``."""
    if pos >= len(line):
        return pos
    start = pos
    while start > 0 and start > pos - 3 and 0x80 <= line[start] < 0xC0:
        start -= 1
    if start < pos and line[start] < 0xC0:  # not a lead byte: not UTF-8 after all
        return pos
    return start


def _column(line: bytes, pos: int) -> int:
    """The column, counted in characters as an editor counts them, of the
    character that holds byte ``pos`` of ``line`` (UTF-8 where it decodes,
    one column per other byte)."""
    start = _start(line, min(pos, len(line)))
    return len(line[:start].decode("utf-8", "replace")) + 1


def _char(line: bytes, pos: int) -> str:
    """The character (or byte) at byte ``pos``, shown."""
    start = _start(line, pos)
    for end in range(start + 1, min(start + 4, len(line)) + 1):
        try:
            return show(line[start:end].decode("utf-8").encode("utf-8"))
        except UnicodeDecodeError:
            continue
    return show(line[pos : pos + 1])


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
    return f"'{_char(line, pos)}'"


#: Quotation marks a word processor or web page puts where a rule wants
#: a plain '"'.
TYPOGRAPHIC = "\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b\u00ab\u00bb\u2039\u203a"
BOM = b"\xef\xbb\xbf"


CRLF = (
    "the line ends with a carriage return: the file has DOS (CRLF) line endings, which "
    "tcprules refuses; convert it with dos2unix or tr -d '\\r'"
)


def _address_end(line: bytes, dialect: str) -> int:
    """Where the address of the trimmed ``line`` ends in ``dialect`` (the
    end of the line when nothing ends it)."""
    from .language6 import fefe_colon, feh_colon  # the forks' syntax (imports this module)

    if dialect == FEFE:
        end: int | None = fefe_colon(line)
    elif dialect == FEH:
        end = feh_colon(line)
    else:
        end = line.find(b":")
    return len(line) if end is None or end < 0 else end


def _hang(line: bytes) -> str:
    """Why ucspi-tcp-ipv6's tcprules never finishes ``line``."""
    text = (
        "no ':allow' or ':deny' on this line: ucspi-tcp-ipv6's tcprules ends the address at "
        "the first ':' followed by 'allow' or 'deny', and on a line without one it loops for "
        "ever (the database is never written)"
    )
    if not line.strip(b" \t\r"):
        what = "a line of blanks" if line.strip(b"\r") or not line else "an empty line"
        return f"{text}; this is {what}: delete it, or write a comment starting with '#'"
    lowered = line.lower()
    for word in (b"allow", b"deny"):
        at = lowered.find(word)
        if at < 0:
            continue
        before = line[:at].rstrip(b" \t")
        if line[at : at + len(word)] != word:
            return f"{text} (the words are lower case)"
        if before.endswith(b":") and len(before) < at:
            return f"{text} (nothing may come between the ':' and the word)"
        if before.endswith(b","):
            return f"{text} (the address ends at a ':', not at a ',')"
    if b":" not in line:
        return f"{text}; ucspi-tcp 0.88 skips a line without ':', this dialect does not"
    return text


def reason(code: int, line: bytes, pos: int, dialect: str = CLASSIC) -> str:
    """Why ``dialect``'s tcprules refuses ``line`` (trimmed), given the
    error code and byte position the compilers report."""
    cr_at_end = line.endswith(b"\r")
    if cr_at_end and pos == len(line) - 1 and code in (E_ACTION, E_INSTR, E_NODELIM):
        return CRLF
    col = _column(line, pos)
    if code == E_ACTION:
        colon = "the ':' that ends the address" if dialect == FEH else "the first ':'"
        word = line[pos:].split(b",", 1)[0][:24]
        text = (
            f"expected 'allow' or 'deny' right after {colon} (column {col}), found '{show(word)}'"
            if word
            else f"expected 'allow' or 'deny' after {colon}, found the end of the line"
        )
        after = line[pos:]
        if after.lstrip(b" \t").startswith((b"allow", b"deny")):
            text += " (nothing may come between the ':' and the word)"
        elif after.lower().startswith((b"allow", b"deny")):
            text += " (the words are lower case)"
        elif dialect == FEH:
            text += (
                " (ucspi-tcp6's address is everything before the last ':' that comes before "
                "the line's first ',', or before that ',' when no ':' does)"
            )
        elif b":" in after:
            text += (
                " (the address is everything before the first ':', so it cannot contain "
                "one: tcprules 0.88 has no IPv6 syntax; --dialect ucspi-tcp-ipv6 or "
                "--dialect ucspi-tcp6 reads IPv6 rules)"
            )
    elif code == E_HANG:
        text = _hang(line)
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
            f"{_column(line, pos - 1)}, found the end of the line"
        )
    elif code == E_UNTERM:
        d = _char(line, pos)
        text = (
            f"the value opened by '{d}' at column {col} is not closed: no second '{d}' on the line"
        )
        if line[pos] in (32, 9):
            text += " (trailing blanks are trimmed before the line is read)"
    elif code in (E_LOW, E_HIGH):
        end_of_address = _address_end(line, dialect)
        dash = line.index(b"-")
        if code == E_LOW:
            bound, which = line[pos:dash], "low"
        else:
            end = line.find(b".", pos, end_of_address)
            bound, which = line[pos : end if end >= 0 else end_of_address], "high"
        text = (
            f"the {which} bound '{show(bound)}' of the range at column {col} is not a "
            "number: an address with '-' (and no '=' or '@') is a range of one octet, "
            "as in 10.0.0.1-99, and both bounds must be digits"
        )
        if dialect == FEFE and 58 in line[:end_of_address]:
            text += " (ucspi-tcp-ipv6 has no IPv6 ranges: write a prefix such as '2001:db8::')"
    elif code in (E_PREFIXNUM, E_PREFIXLEN):
        address = line[: _address_end(line, dialect)]
        length = address[pos:]
        most = 128 if 58 in address else 32
        family = "an IPv6" if most == 128 else "an IPv4"
        if code == E_PREFIXNUM:
            slash = _column(line, pos - 1)
            text = (
                f"the prefix length '{show(length)}' after the '/' at column {slash} is not a "
                "number: ucspi-tcp6 reads ADDRESS/N as a CIDR network"
            )
        else:
            text = (
                f"the prefix length '{show(length)}' at column {col} is out of range: "
                f"{family} network takes /1 to /{most}"
            )
            if length.lstrip(b"0") in (b"", b"\0") or length[:1] == b"\0":
                text += " (/0, every address, is the default rule ':allow' or ':deny')"
    elif code in (E_IP6, E_IP6CIDR):
        address = line[: _address_end(line, dialect)]
        shown = show(address[pos:])
        what = "network" if code == E_IP6CIDR else "address"
        text = (
            f"'{shown}' holds a ':', so ucspi-tcp6 reads it as an IPv6 {what}, and it is "
            f"none (an IPv6 {what} is written as in 2001:db8::1"
            + ("/64" if code == E_IP6CIDR else "")
            + ")"
        )
        if code == E_IP6CIDR and address.endswith((b"/0", b"/00")):
            text = (
                f"'{shown}' is /0: ucspi-tcp6 refuses an IPv6 network of every address; the "
                "default rule ':allow' or ':deny' says that"
            )
    else:  # pragma: no cover - both backends only report the codes above
        text = f"error code {code} at column {col}"
    quotes = sorted({q for q in line.decode("utf-8", "replace") if q in TYPOGRAPHIC})
    if quotes:
        text += (
            f"; the line holds typographic quotes ({' '.join(quotes)}), as pasted from a web "
            "page or a word processor: tcprules delimits a value with one byte, so write "
            "plain ASCII quotes, as in ',RELAYCLIENT=\"\"'"
        )
    if line.startswith(BOM):
        text += (
            "; the line starts with a UTF-8 byte order mark (bytes EF BB BF), which tcprules "
            "reads as part of it: save the file without it"
        )
    if cr_at_end:
        text += "; also, " + CRLF
    return text
