"""pycdb's exceptions: one base class, one subclass per kind of failure.

Both backends raise exactly these classes, so callers never need to know
which backend answered.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CorruptError",
    "DataError",
    "DecompileError",
    "DialectError",
    "Error",
    "RulesSyntaxError",
    "TooLargeError",
]


class Error(Exception):
    """Base class of every error pycdb raises on purpose."""


class CorruptError(Error):
    """The file is not a sound cdb: a position or length read from it
    points outside the file or its record area, a hash table has no empty
    slot, or the records run into the tables.

    ``offset`` is the byte offset the problem was found at, when there is
    one.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class TooLargeError(Error):
    """Adding a record would take the file past the cdb format's 4 GiB
    limit (every position in the file must fit in 32 bits)."""


class RulesSyntaxError(Error):
    """A line of tcprules text that tcprules would refuse.

    ``filename`` names the source (``"-"`` for standard input), ``lineno``
    counts from 1, ``line`` is the offending line as tcprules prints it
    (trimmed of trailing newline, spaces and tabs), ``reason`` says what
    was expected where.
    """

    def __init__(self, filename: str, lineno: int, line: bytes, reason: str) -> None:
        self.filename = filename
        self.lineno = lineno
        self.line = line
        self.reason = reason
        # Control bytes escaped: a CRLF file's '\r' must not move the cursor.
        shown = "".join(
            f"\\x{ord(c):02x}" if c < " " or c == "\x7f" else c
            for c in line.decode("utf-8", "backslashreplace")
        )
        super().__init__(f"{filename}:{lineno}: unable to parse this line: {shown}: {reason}")


class DataError(Error, ValueError):
    """Record data that tcprules could not have written
    (:func:`pycdb.rules.data.decode`).  ``offset`` is the byte of the data
    where the problem starts."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class DecompileError(Error):
    """No rules text compiles to the file (:func:`pycdb.rules.decompile.decompile`).
    ``offset`` and ``key`` name the record (or the structural problem) to
    blame, when there is one; ``reason`` says why; ``report`` is the
    validation report that found it."""

    def __init__(
        self,
        message: str,
        reason: str,
        offset: int | None = None,
        key: bytes | None = None,
        report: Any = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.offset = offset
        self.key = key
        self.report = report


class DialectError(Error, ValueError):
    """Something that belongs to another dialect of the tcprules language
    than the one in use (:mod:`pycdb.rules.dialects`): an IPv6 client given
    to ucspi-tcp 0.88's rules check, whose tcpserver has no IPv6, or rules
    whose meaning one dialect cannot express in another (``pycdb
    convert``).  The message names the dialect to use, or the line."""


class LineRefused(Exception):
    """Inside pycdb.rules only: the language refuses a line, with the
    error code (``pycdb.rules.messages.E_*``) and the byte position in the
    trimmed line.  Callers see it as :class:`RulesSyntaxError`, which
    names the file and line and words the reason."""

    def __init__(self, code: int, pos: int) -> None:
        super().__init__(code, pos)
        self.code = code
        self.pos = pos
