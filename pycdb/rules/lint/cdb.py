"""Lint of a rules cdb: each key judged by the first record a lookup
returns (the one tcpserver uses, docs/format.md §7), its other records
reported as never used, and a database tcpserver cannot read reported
as ``corrupt``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from ...errors import CorruptError
from ...findings import Finding
from ...reader import Reader
from ..dialects import CLASSIC, get, recognise
from .judge import judge, judge_file
from .report import LintReport
from .sniff import read
from .wording import quote_text, written

__all__ = ["lint_cdb"]


def lint_cdb(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    paranoid: bool = False,
    st: os.stat_result | None = None,
    no_dns: bool = False,
    no_ident: bool = False,
    dialect: str | None = None,
) -> LintReport:
    """Lint a rules cdb: a path, or the file's bytes.  OSError when the
    file cannot be read (see :func:`pycdb.rules.lint.sniff.read`); a
    damaged file is a ``corrupt`` finding.  ``paranoid`` says tcpserver
    runs with ``-p`` (host-name grants of RELAYCLIENT are then infos, not
    errors); ``no_dns`` and ``no_ident`` that it runs with ``-H`` and
    ``-R`` (rules on host names or ident answers never fire).  ``st``, the
    file's status when ``source`` is its bytes, lets lint judge its mode
    too (a path's is read with it).  ``dialect`` names the tcpserver that
    reads it (:mod:`pycdb.rules.dialects`); None takes the one its keys
    show (:func:`pycdb.rules.dialects.recognise`: an info ``dialect``
    finding says so), else ucspi-tcp 0.88."""
    if isinstance(source, bytes):
        data = source
        report = LintReport(name or "<bytes>", "cdb")
        if st is not None:
            _mode(report, st)
    else:
        data, st = read(source)
        report = LintReport(name or os.fsdecode(source), "cdb")
        _mode(report, st)
    try:
        reader = Reader.from_bytes(data, report.name)
    except CorruptError as exc:
        return _corrupt(report, exc)
    with reader:
        counts: dict[bytes, int] = {}
        try:
            for key in reader:
                counts[key] = counts.get(key, 0) + 1
        except CorruptError as exc:
            return _corrupt(report, exc)
        report.records = sum(counts.values())
        report.rules = len(counts)
        add = report.findings.append
        report.dialect = _dialect(report, counts, dialect)
        for key, count in counts.items():
            try:
                first = reader.get(key)
                every = reader.get_all(key) if count > 1 else []
            except CorruptError as exc:
                report.findings.clear()
                return _corrupt(report, exc)
            if first is None:
                add(
                    Finding(
                        "unreachable",
                        "tcpserver never finds this key: the hash tables do not lead to its "
                        "record (the file is damaged; 'pycdb validate' says where)",
                        "warning",
                        key=key,
                    )
                )
                continue
            found = judge(
                key, first, paranoid, None, report.dialect, no_dns=no_dns, no_ident=no_ident
            )
            for severity, code, message in found:
                add(Finding(code, message, severity, key=key))
            if count > 1:
                others = [quote_text(written(d)) for d in every[1:3]]
                more = ", ..." if count > 3 else ""
                add(
                    Finding(
                        "duplicate-key",
                        f"{count} records have this key: tcpserver uses only the first "
                        f"({quote_text(written(first))}) and never the other"
                        f"{'s' if count > 2 else ''} ({', '.join(others)}{more})",
                        "warning",
                        key=key,
                    )
                )
    judge_file(report, b"" in counts, "the database has no records")
    return report


def _mode(report: LintReport, st: os.stat_result) -> None:
    """A database others cannot read: tcpserver opens it once per
    connection as the user it runs as (``-u``), and drops the connection
    when it cannot (the mode 0600 a umask of 077 gives)."""
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o004:
        return
    who = "its owner and group" if st.st_mode & 0o040 else "its owner"
    report.findings.append(
        Finding(
            "unreadable-mode",
            f"the file's mode is {stat.S_IMODE(st.st_mode):04o}: only {who} "
            f"(uid {st.st_uid}, gid {st.st_gid}) can read it, and tcpserver reads the rules "
            "as the user it runs as (tcpserver -u), once per connection: if that user cannot, "
            "every connection is dropped; make it readable (chmod 644, what tcprules gives "
            "under the usual umask 022)",
            "warning",
        )
    )


def _dialect(report: LintReport, keys: Iterable[bytes], given: str | None) -> str:
    """The dialect to judge the keys in: ``given``, else the one they are
    recognised as (with an info finding), else ucspi-tcp 0.88 (with a
    warning when they are of both forks)."""
    if given is not None:
        return get(given).name
    found = recognise(keys)
    if found.dialect is not None:
        report.findings.append(
            Finding(
                "dialect",
                f"{found.describe()}; judged in that dialect (--dialect names another)",
                "info",
            )
        )
        return found.dialect
    if found.mixed:
        report.findings.append(
            Finding(
                "mixed-dialects",
                f"{found.describe()}; judged as ucspi-tcp 0.88, whose tcpserver looks none "
                "of them up (--dialect names the one that reads this database)",
                "warning",
            )
        )
    return CLASSIC


def _corrupt(report: LintReport, exc: CorruptError) -> LintReport:
    detail = str(exc)
    prefix = f"{report.name}: "
    if detail.startswith(prefix):
        detail = detail[len(prefix) :]
    report.findings.append(
        Finding(
            "corrupt",
            f"tcpserver cannot read this database ({detail}): it drops every connection "
            "whose lookup meets the damage, and lint stops here; 'pycdb validate' lists "
            "the damage",
        )
    )
    return report
