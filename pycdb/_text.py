"""Bytes in messages: the one escaper every error, finding and command
uses, so a key is printed the same way everywhere."""

from __future__ import annotations


def show(data: bytes, limit: int | None = None) -> str:
    """``data`` as printable text: UTF-8 where it decodes, every control
    byte (and DEL) and every byte that is not UTF-8 as ``\\xNN``, so a
    message can never move the cursor and ``'café'`` stays readable.  Cut
    at ``limit`` bytes (with ``...``) when given."""
    cut = limit is not None and len(data) > limit
    if cut:
        data = data[:limit]
    out = []
    for ch in data.decode("utf-8", "backslashreplace"):
        if ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out) + ("..." if cut else "")


def quote(data: bytes, limit: int | None = None) -> str:
    """``data`` shown (see :func:`show`) between single quotes."""
    return f"'{show(data, limit)}'"
