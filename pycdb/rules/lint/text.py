"""Lint of rules text: each line read as tcprules reads it, and judged.

Lines are read one by one with :func:`pycdb.rules.language.parse_line`,
the tcprules parser ``pycdb make`` uses, so the rules judged are exactly
the records tcprules would write (docs/rules-language.md); each key is
judged as tcpserver would use it (:mod:`.judge`), and on top of that
come the mistakes only the text shows: lines tcprules skips or refuses
(§2 to §7), ranges that add no key or are cut (§7), keys given again
(§8), CR line endings (§3), inline and indented comments (§2), and,
with ``cdb=``, a stale database (:mod:`.stale`).

Unlike tcprules, lint carries on past a line tcprules refuses, so one
run lists every problem; a refused line that a simple repair makes valid
(its carriage return or its trailing comment removed) is judged as
repaired, so a CRLF file is still checked for open relays.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import stat

from ..._text import quote
from ...errors import RulesSyntaxError
from ...findings import Finding, Severity
from .._names import CLASSIC, FEFE
from ..dialects import get
from ..language import Rule, Source, parse_line, range_bounds, source_chunks
from ..messages import CRLF
from ..reading import lines
from .judge import judge, judge_file
from .report import LintReport
from .sniff import read
from .stale import Record, stale
from .wording import quote_text, written

__all__ = ["lint_text"]

_REFUSED = "tcprules refuses this line (and with it the whole file): "
# A line whose address is made of hex digits, ':' and '.' (with a '/N'),
# up to the ':' before 'allow' or 'deny': an IPv6 address, perhaps.
_IPV6_LINE = re.compile(rb"([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:/[0-9]{1,3})?):(?:allow|deny)")


def _try(line: bytes, lineno: int, dialect: str) -> Rule | None:
    try:
        return parse_line(line, lineno, dialect=dialect)
    except RulesSyntaxError:
        return None


class _TextLinter:
    """One pass over rules text, line by line: :meth:`line` for each, then
    :meth:`finish`; the findings are in ``report``."""

    def __init__(
        self,
        name: str,
        paranoid: bool,
        keep: bool,
        dialect: str = CLASSIC,
        no_dns: bool = False,
        no_ident: bool = False,
    ) -> None:
        self.report = LintReport(name, "text", dialect=dialect)
        self.lang = get(dialect)
        self.dialect = self.lang.name
        self.paranoid = paranoid
        self.no_dns = no_dns
        self.no_ident = no_ident
        self.keep = keep  # keep the records, to compare them with a cdb
        self.first: dict[bytes, tuple[int, bytes]] = {}  # key -> (line, data)
        self.count = 0  # records tcprules would write
        self.records: list[Record] = []  # and which (when kept)
        self.refused: int | None = None  # the first line tcprules refuses
        self.crlf: list[int] = []
        self.crlf_at = 0
        self.has_default = False

    def add(
        self, severity: Severity, code: str, message: str, line: int, key: bytes | None = None
    ) -> None:
        self.report.findings.append(Finding(code, message, severity, key=key, line=line))

    def line(self, raw: bytes, lineno: int) -> None:
        try:
            rule = parse_line(raw, lineno, self.report.name, dialect=self.dialect)
        except RulesSyntaxError as exc:
            if self.refused is None:
                self.refused = lineno
            repaired = self.repair(raw, lineno, exc)
            if repaired is not None:
                self.rule(repaired, accepted=False)
            return
        if rule is None:
            self.skipped(raw, lineno)
        else:
            self.rule(rule, accepted=True)

    def skipped(self, raw: bytes, lineno: int) -> None:
        """A line tcprules skips: a warning when it looks meant as a rule."""
        if not raw or raw[:1] == b"#":
            return
        text = raw.rstrip(b" \t\n")
        if lineno == 1 and text.startswith(b"\xef\xbb\xbf"):
            text = text[3:]  # a byte order mark (see .keys.shape)
        if not text.strip(b" \t\r") or text.lstrip(b" \t")[:1] == b"#":
            return  # blank, or an indented comment: skipped, as meant
        self.add(
            "warning",
            "no-colon",
            "tcprules skips this line silently: it has no ':', so it is no rule (a rule is "
            "ADDRESS:allow or ADDRESS:deny)",
            lineno,
        )

    def repair(self, raw: bytes, lineno: int, exc: RulesSyntaxError) -> Rule | None:
        """Report a refused line; return the rule it becomes once its
        carriage return or trailing comment is removed, if one does."""
        text = raw.rstrip(b" \t\n")
        if self.dialect == FEFE and self.lang.address_end(text) == -1:
            self.add("error", "hang", exc.reason, lineno)
            return None
        m = _IPV6_LINE.match(text) if self.dialect == CLASSIC else None
        if m and _is_ipv6(m.group(1)):
            address = m.group(1)
            what = "network" if b"/" in address else "address"
            dialect = (
                "ucspi-tcp-ipv6's tcprules reads IPv6 prefixes cut at a ':', but has no CIDR either"
                if what == "network"
                else "ucspi-tcp-ipv6's tcprules reads it"
            )
            self.add(
                "error",
                "ipv6",
                f"{_REFUSED}{quote(address)} is an IPv6 {what}, but tcprules 0.88 has no IPv6 "
                "syntax: the address ends at the first ':', so it reads the address "
                f"{quote(text[: text.find(b':')])} and then {quote(text[text.find(b':') + 1 :])} "
                f"where 'allow' or 'deny' must be ({dialect}; lint it with --dialect "
                "ucspi-tcp-ipv6 or --dialect ucspi-tcp6 if that is the tcprules you run)",
                lineno,
            )
            return None
        if text.lstrip(b" \t")[:1] == b"#":
            self.add(
                "error",
                "indented-comment",
                f"{_REFUSED}a comment starts with '#' in the first column; this one starts "
                "with blanks, so tcprules reads it as a rule (whose address is everything "
                "before the first ':')",
                lineno,
            )
            return None
        bases = [(text, False)]
        if text.endswith(b"\r"):
            bases.insert(0, (text[:-1], True))
        for base, cr in bases:
            rule = _try(base, lineno, self.dialect)
            cut = None
            if rule is None:
                colon = self.lang.address_end(base)
                for pos in range(len(base) if colon is None or colon < 0 else colon + 1, len(base)):
                    if base[pos] == 35:  # '#'
                        rule = _try(base[:pos], lineno, self.dialect)
                        if rule is not None:
                            cut = pos
                            break
            if rule is None:
                continue
            if cr:
                if not self.crlf:  # one finding for them all (see finish)
                    self.crlf_at = len(self.report.findings)
                    self.add("error", "crlf", _REFUSED + CRLF, lineno)
                self.crlf.append(lineno)
            if cut is not None:
                comment = base[cut:]
                self.add(
                    "error",
                    "inline-comment",
                    f"{_REFUSED}tcprules has no inline comments, and {quote(comment)} follows "
                    "the rule; put the comment on a line of its own, starting with '#'",
                    lineno,
                )
            return rule
        self.add("error", "syntax", _REFUSED + exc.reason, lineno)
        return None

    def rule(self, rule: Rule, accepted: bool) -> None:
        """Judge a rule: one tcprules ``accepted``, or a refused line as
        repaired (which adds no record to compare with a database)."""
        self.report.rules += 1
        lineno = rule.lineno
        if accepted:
            self.count += len(rule.keys)
            if self.keep:
                self.records += [(key, rule.data, lineno) for key in rule.keys]
        if not rule.keys:
            self.empty_range(rule)
            return
        if len(rule.keys) > 1:
            bounds = range_bounds(rule.address)
            if bounds is not None and bounds[1] > 255:
                self.add(
                    "warning",
                    "range-clipped",
                    f"the range {quote(rule.address)} stops at 255: tcprules cuts a high bound "
                    f"above 255 ({bounds[1]}) to 255",
                    lineno,
                )
        fresh: list[bytes] = []
        earlier: dict[int, list[bytes]] = {}
        for key in rule.keys:
            seen = self.first.get(key)
            if seen is None:
                self.first[key] = (lineno, rule.data)
                fresh.append(key)
            else:
                earlier.setdefault(seen[0], []).append(key)
        for before, keys in earlier.items():
            self.duplicate(rule, before, keys, all_old=not fresh)
        if b"" in fresh:
            self.has_default = True
        # Judge each key that decides something; a range's keys share
        # their findings, reported once for the line.
        seen_codes: dict[tuple[str, str], int] = {}
        for key in fresh:
            for severity, code, message in judge(
                key,
                rule.data,
                self.paranoid,
                (rule.action, rule.env),
                self.dialect,
                no_dns=self.no_dns,
                no_ident=self.no_ident,
            ):
                group = (code, message if len(fresh) == 1 else code)
                if group in seen_codes:
                    seen_codes[group] += 1
                    continue
                seen_codes[group] = 1
                self.add(severity, code, message, lineno, key)
        if len(fresh) > 1:
            self.tally(lineno, seen_codes)

    def tally(self, lineno: int, counts: dict[tuple[str, str], int]) -> None:
        """Add "(and N more keys of this range)" to grouped findings."""
        findings = self.report.findings
        for i, f in enumerate(findings):
            if f.line != lineno:
                continue
            extra = counts.get((f.code, f.code), 1) - 1
            if extra > 0:
                findings[i] = dataclasses.replace(
                    f,
                    message=f"{f.message} (and {extra} more key"
                    f"{'s' if extra > 1 else ''} of this range)",
                )

    def duplicate(self, rule: Rule, before: int, keys: list[bytes], all_old: bool) -> None:
        """``keys`` of ``rule`` were already added on line ``before``
        (``all_old``: every key of the line was)."""
        old = self.first[keys[0]][1]
        if old == rule.data:
            same = "with the same rule, so this line only repeats it"
        else:
            same = (
                f"line {before} says {quote_text(written(old))}, "
                f"this line {quote_text(written(rule.data))}"
            )
        if len(rule.keys) == 1:
            message = (
                f"{quote(keys[0])} is already a key on line {before}, and tcpserver uses only "
                f"the first record of a key: this line is never used ({same})"
            )
        else:
            shown = ", ".join(quote(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
            unused = "; this line is never used" if all_old else ""
            n = len(rule.keys)
            if len(keys) == 1:
                are = f"{quote(keys[0])}, one of this line's {n} keys, is already a key"
            else:
                are = f"{len(keys)} of this line's {n} keys ({shown}) are already keys"
            message = (
                f"{are} on line {before}, whose rule tcpserver uses for "
                f"{'it' if len(keys) == 1 else 'them'}{unused} ({same})"
            )
        self.add("warning", "duplicate-key", message, rule.lineno, keys[0])

    def empty_range(self, rule: Rule) -> None:
        """A range line that adds no key (docs/rules-language.md §7)."""
        bounds = range_bounds(rule.address)
        assert bounds is not None  # only a range adds no key
        low, high = bounds
        if low <= high:
            why = f"its low bound {low} is above 255, where tcprules cuts the high bound {high}"
        else:
            why = f"its low bound {low} is above its high bound {high}"
        self.add(
            "warning",
            "range-empty",
            f"the range {quote(rule.address)} adds no rule: {why} (tcprules silently adds nothing)",
            rule.lineno,
        )

    def finish(self) -> None:
        """Complete the report: the CRLF finding's list of lines, file
        order, and the findings about the file as a whole."""
        if self.crlf:
            rest = self.crlf[1:]
            if rest:
                listed = ", ".join(map(str, rest[:5])) + (", ..." if len(rest) > 5 else "")
                more = (
                    f"; the same goes for line{'s' if len(rest) > 1 else ''} {listed} (lint "
                    "judges these lines as if converted)"
                )
            else:
                more = " (lint judges the line as if converted)"
            f = self.report.findings[self.crlf_at]
            self.report.findings[self.crlf_at] = dataclasses.replace(f, message=f.message + more)
        self.report.findings.sort(key=lambda f: f.line or 0)
        self.report.records = self.count
        judge_file(self.report, self.has_default, "there are no rules")


def _is_ipv6(address: bytes) -> bool:
    try:
        net = ipaddress.ip_network(address.decode("ascii"), strict=False)
    except ValueError:
        return False
    return net.version == 6


def lint_text(
    source: Source,
    *,
    filename: str | None = None,
    cdb: str | os.PathLike[str] | None = None,
    paranoid: bool = False,
    modified: int | None = None,
    no_dns: bool = False,
    no_ident: bool = False,
    dialect: str | None = None,
) -> LintReport:
    """Lint rules text in ``dialect`` (:mod:`pycdb.rules.dialects`;
    ucspi-tcp 0.88 by default): a path, the text as bytes, a binary file
    object or an iterable of lines (as :func:`pycdb.rules.parse` takes
    them).
    ``filename`` names it in messages.  ``cdb`` names the database that
    should have been compiled from it: it is ``stale`` when compiling the
    text (into a temporary file, never touching ``cdb``) does not give its
    bytes.  ``modified`` is the text's modification time (ns), which the
    ``stale`` finding compares with the database's; a regular file's own
    is used when ``source`` is its path.  ``paranoid`` says tcpserver runs
    with ``-p``, ``no_dns`` and ``no_ident`` with ``-H`` and ``-R`` (see
    :func:`pycdb.rules.lint.lint_cdb`).  OSError when a
    file cannot be read (see :func:`pycdb.rules.lint.sniff.read`).  The
    text is held in memory while it is judged."""
    if isinstance(source, (str, os.PathLike)):
        text, st = read(source)
        name = filename or os.fspath(source)
        if modified is None and stat.S_ISREG(st.st_mode):
            modified = st.st_mtime_ns
    else:
        name, chunks = source_chunks(source, filename)
        text = b"".join(chunks)
    linter = _TextLinter(
        name,
        paranoid,
        keep=cdb is not None,
        dialect=get(dialect).name,
        no_dns=no_dns,
        no_ident=no_ident,
    )
    for lineno, raw in enumerate(lines([text]), 1):
        linter.line(raw, lineno)
    linter.finish()
    report = linter.report
    if cdb is not None:
        finding = stale(name, text, modified, cdb, linter.refused, linter.records, linter.dialect)
        if finding is not None:
            report.findings.append(finding)
    return report
