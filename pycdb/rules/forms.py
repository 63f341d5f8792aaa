"""Which cdb keys a tcprules line can produce, and the address that does.

The one place that knows the shapes of tcprules' keys, for the tools that
read a rules database back: :mod:`pycdb.rules.validate` (is every key one
tcprules could have written?) and :mod:`pycdb.rules.decompile` (which
address writes it back?).  Everything follows from ``tcprules.c``
(ucspi-tcp 0.88), and the tests check each claim against the real
program:

* An address is the text of a line before its first ``:``, and a line
  ends at ``\\n``: no key holds ``:`` or a newline.
* A line whose first byte is ``#`` is a comment, and a line starts with
  its address: no key starts with ``#``.
* An address holding ``=`` or ``@`` is always the key itself, byte for
  byte, ``-`` or not.
* Any other address holding ``-`` is a range, and every key it adds is
  ``P N S``: ``P`` is the text before the range's low bound (empty or
  ending in ``.``, and free of ``-``, because the range's ``-`` is the
  address's first), ``N`` a number from 0 to 255 in canonical decimal
  (tcprules formats it; the bounds as written do not matter), and ``S``
  the text from the ``.`` after the high bound (or empty).  So a key with
  a ``-`` (and no ``=`` or ``@``) exists only if one of its dot-separated
  fields before its first ``-`` is such a number, and it is then written
  back as the one-key range ``P N-N S``.
* Every other address is the key itself.

Nothing else constrains a key: it may be empty, start or end with a space
or tab (a line is trimmed only after its last instruction), and hold NUL
or any other byte.
"""

from __future__ import annotations

__all__ = [
    "DECIMAL",
    "address_of",
    "is_range",
    "key_problem",
    "next_in_range",
    "range_address",
    "range_fields",
]

#: Canonical decimal text of every number a range can produce.
DECIMAL = [b"%d" % n for n in range(256)]
_NUMBER = {text: n for n, text in enumerate(DECIMAL)}


def is_range(address: bytes) -> bool:
    """Whether tcprules reads ``address`` as a range (and expands it)."""
    return 45 in address and 61 not in address and 64 not in address  # '-', '=', '@'


def range_fields(key: bytes) -> list[tuple[int, int, int]]:
    """The ways a range line can produce ``key``: ``(start, end, n)`` for
    each dot-separated field ``key[start:end]`` that a range can have put
    there (the number ``n`` in canonical decimal, before the key's first
    ``-``), last field first.  Empty for a key holding ``=`` or ``@``,
    which no range produces.  Assumes :func:`key_problem` found nothing
    else wrong (no ``:``, newline, or leading ``#``)."""
    if 61 in key or 64 in key:
        return []
    dash = key.find(b"-")
    limit = len(key) if dash < 0 else dash
    out = []
    end = key.rfind(b".", 0, limit) if dash >= 0 else len(key)
    # With a '-', the field holding it cannot be the number: start from
    # the last '.' before the dash, which ends a field that can.
    while end >= 0:
        start = key.rfind(b".", 0, end) + 1
        n = _NUMBER.get(key[start:end])
        if n is not None:
            out.append((start, end, n))
        end = start - 1
    return out


def next_in_range(first: bytes, key: bytes) -> tuple[int, int, int] | None:
    """``(start, end, n)`` when one range line can produce ``first`` and
    then ``key``: ``first[start:end]`` is one of its :func:`range_fields`,
    holding the number ``n``, and ``key`` is ``first`` with ``n + 1``
    there.  None otherwise.  (The decompiler asks this for neighbouring
    records, so the common refusals come first and cheaply.)"""
    if 61 in first or 64 in first:  # '=', '@': never a range
        return None
    fa = first.split(b".")
    fk = key.split(b".")
    if len(fa) != len(fk):
        return None
    differs = list(map(bytes.__ne__, fa, fk))
    if differs.count(True) != 1:
        return None
    i = differs.index(True)
    n = _NUMBER.get(fa[i])
    if n is None or n == 255 or fk[i] != DECIMAL[n + 1]:
        return None
    start = len(first) - len(b".".join(fa[i:]))
    if 45 in first[:start]:  # the field must come before the first '-'
        return None
    return start, start + len(fa[i]), n


def key_problem(key: bytes) -> str | None:
    """Why no tcprules line can produce ``key``; None when one can."""
    if 58 in key:  # ':'
        return "it contains ':', and a rules line's address ends at its first ':'"
    if 10 in key:
        return "it contains a newline, and a rules line ends at a newline"
    if key[:1] == b"#":
        return "it starts with '#', which makes a rules line a comment"
    if is_range(key) and not range_fields(key):
        return (
            "it contains '-' and neither '=' nor '@', so only a range line can produce it, "
            "and a range only writes keys with a number from 0 to 255 (no leading zeros) as a "
            "whole dot-separated field before the first '-'"
        )
    return None


def range_address(key: bytes, start: int, end: int, high: int) -> bytes:
    """The range address that produces ``key`` and the keys after it up
    to number ``high`` in the field ``key[start:end]`` (one of
    :func:`range_fields`)."""
    return key[:end] + b"-" + DECIMAL[high] + key[end:]


def address_of(key: bytes) -> bytes:
    """An address from which tcprules produces exactly ``key``: the key
    itself, or a one-key range when tcprules would expand the key as
    written.  ValueError (the reason) when no address produces it."""
    problem = key_problem(key)
    if problem is not None:
        raise ValueError(problem)
    if not is_range(key):
        return key
    start, end, n = range_fields(key)[0]
    return range_address(key, start, end, n)
