"""The record data tcprules writes, both ways.

A rule's data is ``D\\0`` for ``deny`` (nothing for ``allow``), then one
``+NAME=VALUE\\0`` per instruction, in line order.  :func:`encode` builds it;
:func:`decode` is strict: it accepts exactly the byte strings tcprules can
produce, and for anything else raises :class:`DataError` saying why and
where.  Validation and decompilation rest on that: data that decodes can
be written back as rules text that compiles to the same bytes.

What tcprules can produce is a little wider than what tcpserver reads:
a NAME may hold any byte but ``=`` and newline, a VALUE any byte but
newline, so either may contain NUL.  ``+A=x\\0y\\0`` is therefore a real
tcprules output (from ``,A="x<NUL>y"``) although tcpserver only sees
``A=x``.  Where the bytes allow more than one reading, :func:`decode`
prefers tcpserver's: every NUL-terminated piece that is itself a
well-formed ``+NAME=VALUE`` item starts a new instruction, and only the
other pieces are joined (with their NUL) to the value before them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ..errors import DataError

__all__ = ["Env", "decode", "encode", "pick_delimiter"]

Action = Literal["allow", "deny"]
#: The environment instructions of a rule, in order: (NAME, VALUE).
Env = tuple[tuple[bytes, bytes], ...]

#: Delimiters tried first when writing a value back as text: the quote
#: everybody uses, then other printable bytes.
_PREFERRED = b"\"'/|#%^!~;`&*+_-.,@:0123456789abcdefghijklmnopqrstuvwxyz"


def pick_delimiter(value: bytes, last: bool = False) -> int | None:
    """A byte that can delimit ``value`` on a tcprules line, preferring
    ``"``: one that does not occur in it and is not a newline (lines end
    there).  For the ``last`` instruction of a line, not a space or tab
    either: tcprules trims those from the end of the line, closing
    delimiter included.  None when no byte is free."""
    for d in _PREFERRED:
        if d not in value:
            return d
    used = set(value)
    for d in range(256):
        if d != 10 and d not in used and not (last and d in (9, 32)):
            return d
    return None


def encode(action: str, env: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """The data tcprules writes for a rule with ``action`` ("allow" or
    "deny") and the instructions ``env``.  Raises ValueError for an
    instruction no rules line can express (a NAME holding ``=``, a
    newline anywhere, a VALUE leaving no byte free to delimit it)."""
    if action == "deny":
        parts = [b"D\0"]
    elif action == "allow":
        parts = []
    else:
        raise ValueError(f"action must be 'allow' or 'deny', not {action!r}")
    pairs = list(env)
    for i, (name, value) in enumerate(pairs):
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise TypeError("environment names and values are bytes")
        if b"=" in name:
            raise ValueError(f"environment name {name!r} contains '=' (tcprules ends it there)")
        if b"\n" in name or b"\n" in value:
            raise ValueError("a tcprules instruction cannot contain a newline")
        if pick_delimiter(value, last=i == len(pairs) - 1) is None:
            raise ValueError("a value uses every byte, leaving none free to delimit it")
        parts += (b"+", name, b"=", value, b"\0")
    return b"".join(parts)


def decode(data: bytes) -> tuple[Action, Env]:
    """(action, instructions) of data tcprules could have written;
    :class:`DataError` otherwise.  ``encode(*decode(data)) == data``."""
    data = bytes(data)
    action: Action = "allow"
    pos = 0
    if data[:2] == b"D\0":
        action = "deny"
        pos = 2
    elif data[:1] == b"D":
        raise DataError("the data starts with 'D' but not with the 'D\\0' of a deny rule", 0)
    newline = data.find(b"\n")
    if newline >= 0:
        raise DataError("the data contains a newline, which no rules line can hold", newline)
    if pos < len(data) and data[-1] != 0:
        raise DataError(
            "the data does not end with a NUL byte (every tcprules item ends with one)",
            len(data),
        )
    env: list[tuple[bytes, bytes]] = []
    pending: bytes | None = None  # a NAME running over a NUL, still without '='
    pending_at = pos
    while pos < len(data):
        end = data.index(b"\0", pos)
        piece = data[pos:end]
        if pending is not None:
            pending += b"\0" + piece
            eq = pending.find(b"=")
            if eq >= 0:
                env.append((pending[:eq], pending[eq + 1 :]))
                pending = None
        elif piece[:1] == b"+" and b"=" in piece:
            eq = piece.index(b"=")
            env.append((piece[1:eq], piece[eq + 1 :]))
        elif env:
            name, value = env[-1]
            env[-1] = (name, value + b"\0" + piece)
        elif piece[:1] == b"+":
            pending = piece[1:]
            pending_at = pos
        else:
            if not piece:
                what = "an empty item"
            elif piece[:1] == b"D":
                what = "a second 'D' item"
            else:
                what = f"an item starting with byte 0x{piece[0]:02x}"
            raise DataError(
                f"{what} where tcprules writes '+NAME=VALUE' (its data is an optional "
                "'D' item, then '+NAME=VALUE' items)",
                pos,
            )
        pos = end + 1
    if pending is not None:
        raise DataError("an item '+NAME' has no '=' (tcprules always writes one)", pending_at)
    at = 2 if action == "deny" else 0
    for i, (name, value) in enumerate(env):
        at += len(name) + 2
        if pick_delimiter(value, last=i == len(env) - 1) is None:
            raise DataError(
                "a value uses every byte but newline, so no delimiter could have enclosed it",
                at,
            )
        at += len(value) + 1
    return action, tuple(env)
