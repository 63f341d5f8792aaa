"""What lint reports: every finding's code (:data:`CODES`), and the
:class:`LintReport` for one file, made of :class:`pycdb.findings.Finding`
(the one finding class, shared with validation)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ...findings import Finding, Severity

__all__ = ["CODES", "Kind", "LintReport", "Said"]

#: What lint reads a file as: tcprules text, or a database compiled from it.
Kind = Literal["text", "cdb"]

#: A finding before it is placed at a line or a key: (severity, code, message).
Said = tuple[Severity, str, str]

#: Every finding's code, its usual severity and what it is about (the
#: README of tests/fixtures/lint shows each one as a user sees it).
CODES: dict[str, tuple[Severity, str]] = {
    "open-relay": ("error", "everybody can relay: RELAYCLIENT on the default, '=' or '=.tld'"),
    "relay-by-name": ("error", "RELAYCLIENT granted by a host name that a PTR record can forge"),
    "syntax": ("error", "a line tcprules refuses (and with it the whole file)"),
    "crlf": ("error", "DOS line endings: tcprules refuses a line ending in a carriage return"),
    "inline-comment": ("warning", "a '#' comment after a rule: refused, or part of the key"),
    "indented-comment": ("error", "a comment after blanks is read as a rule, and refused"),
    "ipv6": ("error", "an IPv6 address or network, which tcprules 0.88 refuses"),
    "corrupt": ("error", "a cdb that tcpserver cannot read"),
    "stale": ("error", "the cdb is not what tcprules makes of the text (--cdb)"),
    "ident-relay": ("warning", "RELAYCLIENT granted on the client's own ident answer"),
    "broad-relay": ("warning", "RELAYCLIENT granted to a whole public /8"),
    "relayclient-value": ("warning", "a non-empty RELAYCLIENT, appended to every recipient"),
    "rblsmtpd-code": ("warning", "an RBLSMTPD text with an SMTP code of its own: sent twice"),
    "unreadable-mode": ("warning", "a cdb others cannot read: tcpserver -u may drop everyone"),
    "env-name": ("warning", "an environment name with blanks, odd bytes or the wrong case"),
    "duplicate-key": ("warning", "a key given again: tcpserver only reads its first record"),
    "uppercase-host": ("warning", "a host name with capitals: tcpserver's names are lower case"),
    "cidr": ("warning", "CIDR notation, which tcprules stores as a key that never matches"),
    "never-matches": ("warning", "a key no connection produces"),
    "never-fires": ("warning", "a host or ident rule tcpserver -H or -R never looks up"),
    "misread-data": ("warning", "data tcpserver reads otherwise than tcprules wrote it"),
    "unreachable": ("warning", "a key the cdb's hash tables do not lead to"),
    "no-default": ("warning", "no default rule: every client not listed is allowed"),
    "empty": ("warning", "no rules at all: every client is allowed"),
    "no-colon": ("warning", "a line without ':', which tcprules ignores silently"),
    "range-empty": ("warning", "a range whose low bound is above its high bound: no rule"),
    "range-clipped": ("warning", "a range whose high bound above 255 is cut to 255"),
    "newer-text": ("info", "the text changed after the cdb was built, to the same bytes"),
    "hang": ("error", "a line ucspi-tcp-ipv6's tcprules loops on for ever: no ':allow'/':deny'"),
    "ipv6-form": ("warning", "IPv6 text that the dialect's tcpserver never writes"),
    "ipv6-prefix": ("warning", "an IPv6 prefix that matches only some of the network it names"),
    "mapped-ipv4": ("warning", "a rule for ::ffff:a.b.c.d, which tcpserver writes a.b.c.d"),
    "dead-prefix": ("warning", "an ucspi-tcp6 /1 network: its tcpserver never tries /1 keys"),
    "dialect": ("info", "the dialect a cdb's keys were recognised as, and judged in"),
    "mixed-dialects": ("warning", "keys only one IPv6 fork writes, and keys only the other does"),
}


@dataclasses.dataclass
class LintReport:
    """The findings for one file, in file order (whole-file findings last).

    ``name`` is the file as messages name it; ``kind`` what it was read
    as.  ``rules`` counts the rules lines read (text) or the distinct keys
    (cdb); ``records`` the records the file holds or would compile to.
    Each finding's ``line`` is the line of rules text it concerns (None
    for a cdb, and for the file as a whole), its ``key`` the key
    concerned when one is, and its ``offset`` always None (lint names
    records by key).
    """

    name: str
    kind: Kind
    findings: list[Finding] = dataclasses.field(default_factory=list)
    rules: int = 0
    records: int = 0
    #: the dialect the rules were judged in (pycdb.rules.dialects)
    dialect: str = "ucspi-tcp"

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def warnings(self) -> int:
        return self.count("warning")

    @property
    def infos(self) -> int:
        return self.count("info")

    def exit_code(self, strict: bool = False) -> int:
        """lint's contract: 1 when there is an error (with ``strict``, also
        a warning), else 0.  Infos never count."""
        return 1 if self.errors or (strict and self.warnings) else 0

    def summary(self) -> str:
        """``FILE: N errors, M warnings`` (and ``, K infos`` when there are any)."""

        def n(count: int, word: str) -> str:
            return f"{count} {word}" + ("" if count == 1 else "s")

        parts = [n(self.errors, "error"), n(self.warnings, "warning")]
        if self.infos:
            parts.append(n(self.infos, "info"))
        return f"{self.name}: {', '.join(parts)}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the file, its kind and counts, and each finding as
        :meth:`pycdb.findings.Finding.as_dict` gives it."""
        return {
            "file": self.name,
            "kind": self.kind,
            "dialect": self.dialect,
            "rules": self.rules,
            "records": self.records,
            "errors": self.errors,
            "warnings": self.warnings,
            "infos": self.infos,
            "findings": [f.as_dict() for f in self.findings],
        }
