"""What the inspection tools report: one :class:`Finding` class for
validation (``pycdb validate``: is the file sound?) and lint (``pycdb
lint``: what does it really allow?), so a finding reads, prints and
serialises the same way whichever tool made it."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ._text import quote

__all__ = ["Finding", "Severity"]

Severity = Literal["error", "warning", "info"]


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing found in a file.

    ``code`` is a stable identifier for scripts (``slot-hash``,
    ``open-relay``, ...); ``message`` says what is wrong and why it
    matters; ``severity`` is ``"error"``, ``"warning"`` or ``"info"``.
    Where it is: ``offset``, the byte offset in a cdb; ``key``, the
    record's key (or one a rules line adds); ``line``, the line of rules
    text (counted from 1).  Each is None when it does not apply (a
    whole-file finding has none).
    """

    code: str
    message: str
    severity: Severity = "error"
    offset: int | None = None
    key: bytes | None = None
    line: int | None = None

    def format(self, name: str) -> str:
        """The finding as a compiler prints one: ``FILE:LINE: severity:
        message [code]``; for a cdb ``FILE: offset N: key 'KEY': ...``
        (whichever of the two apply); ``FILE: ...`` for the whole file."""
        if self.line is not None:
            where = f"{name}:{self.line}:"
        else:
            parts = [name + ":"]
            if self.offset is not None:
                parts.append(f"offset {self.offset}:")
            if self.key is not None:
                parts.append(f"key {quote(self.key)}:")
            where = " ".join(parts)
        return f"{where} {self.severity}: {self.message} [{self.code}]"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready.  ``key`` as UTF-8 text, a byte that is not UTF-8 as
        a lone surrogate (``surrogateescape``: ``.encode("utf-8",
        "surrogateescape")`` gives the bytes back), as ``pycdb check``
        writes keys."""
        return {
            "severity": self.severity,
            "code": self.code,
            "line": self.line,
            "offset": self.offset,
            "key": None if self.key is None else self.key.decode("utf-8", "surrogateescape"),
            "message": self.message,
        }
