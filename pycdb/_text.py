"""Bytes in messages: the one escaper every error, finding and command
uses, so a key is printed the same way everywhere."""

from __future__ import annotations

#: Characters that are valid UTF-8 but must not reach a terminal as
#: they are: the C1 controls (U+0080..U+009F; some terminals read U+009B
#: as the start of an escape sequence) and the marks that reorder text
#: (bidi overrides and isolates, which can make a key read backwards).
_HIDDEN = frozenset(
    [chr(c) for c in range(0x80, 0xA0)]
    + ["\u200e", "\u200f", "\u061c"]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
)


def show(data: bytes, limit: int | None = None) -> str:
    """``data`` as printable text: UTF-8 where it decodes, and as
    ``\\xNN`` every control byte (C0, DEL, and the C1 controls and
    text-reordering marks, byte by byte) and every byte that is not
    UTF-8, so a message can never move the cursor or hide what it shows,
    and ``'café'`` stays readable.  Cut at ``limit`` bytes (with ``...``)
    when given."""
    cut = limit is not None and len(data) > limit
    if cut:
        data = data[:limit]
    out = []
    for ch in data.decode("utf-8", "backslashreplace"):
        if ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        elif ch in _HIDDEN:
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out) + ("..." if cut else "")


def quote(data: bytes, limit: int | None = None) -> str:
    """``data`` shown (see :func:`show`) between single quotes."""
    return f"'{show(data, limit)}'"
