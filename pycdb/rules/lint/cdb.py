"""Lint of a rules cdb: each key judged by the first record a lookup
returns (the one tcpserver uses, docs/format.md §7), its other records
reported as never used, and a database tcpserver cannot read reported
as ``corrupt``."""

from __future__ import annotations

import os
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
    dialect: str | None = None,
) -> LintReport:
    """Lint a rules cdb: a path, or the file's bytes.  OSError when the
    file cannot be read (see :func:`pycdb.rules.lint.sniff.read`); a
    damaged file is a ``corrupt`` finding.  ``paranoid`` says tcpserver
    runs with ``-p`` (host-name grants of RELAYCLIENT are then infos, not
    errors).  ``dialect`` names the tcpserver that reads it
    (:mod:`pycdb.rules.dialects`); None takes the one its keys show
    (:func:`pycdb.rules.dialects.recognise`: an info ``dialect`` finding
    says so), else ucspi-tcp 0.88."""
    if isinstance(source, bytes):
        data = source
        report = LintReport(name or "<bytes>", "cdb")
    else:
        data = read(source)[0]
        report = LintReport(name or os.fsdecode(source), "cdb")
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
            for severity, code, message in judge(key, first, paranoid, None, report.dialect):
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
