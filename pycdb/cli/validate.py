"""``pycdb validate FILE``: is a cdb (or tcprules database) sound?

The structural validation of :mod:`pycdb.validate` (every byte where
cdbmake puts it: header, records, hash tables, slots), and for a tcprules
database, recognised or asked for with ``--rules``, the rules-level
validation of :mod:`pycdb.rules.soundness` (every key one tcprules can
produce, every value tcprules data), through
:func:`pycdb.rules.soundness.validate_rules`.  ``--no-rules`` validates
the structure only.

Human output, on standard output: a first line naming the file, its
records and size and which kind of database it was checked as (and why),
then one line per finding (``FILE: offset N: what is wrong``), then
``FILE: sound`` or ``FILE: NOT sound: N problems``.  At most ``--limit``
findings (default 1000) are printed; the last line says how many more
were found.  ``--json`` prints one JSON object instead (see
:meth:`pycdb.validate.ValidationReport.as_dict`; each finding as
:meth:`pycdb.findings.Finding.as_dict`, its key UTF-8 text where a byte
that is not UTF-8 is a lone surrogate: ``.encode("utf-8",
"surrogateescape")`` gives the bytes back).

Which keys a tcprules line can produce depends on the dialect
(docs/dialects.md): ``--dialect`` names it; without it, a database whose
keys only one IPv6 fork writes is checked against that fork's tcprules,
and the report's second line says so.

Exit 0 when sound, 100 when not (or for bad usage), 111 when the file
cannot be read (``pycdb: fatal: unable to read FILE: ...``).
"""

from __future__ import annotations

import json

from ..rules.soundness import validate_rules
from ..validate import ValidationReport, describe
from . import _dialect
from ._util import Fatal, oserror_text, split_options, stdout, usage, write_out

USAGE = f"pycdb validate FILE [--rules | --no-rules] [--json] [--limit N] {_dialect.OPTION}"

HELP = f"""usage: {USAGE}

Check that FILE is a sound cdb: the header points at hash tables inside
the file and after the records, each table has two slots per record it
indexes, every slot points at a record with its hash, every record is
reachable from its own hash's table, no record is referenced twice, and
no byte is left over.  For a tcprules database (recognised by its data,
or forced with --rules) also check that every key is one a tcprules line
can produce and every value is data tcprules writes.

  --rules      check it as a tcprules database, recognised or not
  --no-rules   check the cdb structure only
  --json       print the report as one JSON object
  --limit N    keep at most N findings (default 1000; the rest are counted)
{_dialect.HELP}
                 (without it: the one the keys show, else 0.88)
  --           end of options (for a file name starting with -)

Exit 0 when sound, 100 when not, 111 when FILE cannot be read.
"""


def _parse(args: list[str]) -> tuple[str, bool | None, bool, int, str | None] | None:
    """(file, rules, json, limit, dialect); None when help was asked."""
    parsed = split_options(
        args,
        USAGE,
        flags=("rules", "no-rules", "json"),
        valued={"limit": "a number", "dialect": "a dialect"},
    )
    if parsed is None:
        return None
    options, operands = parsed
    rules: bool | None = None
    for name in options:  # the later of --rules and --no-rules wins
        if name in ("rules", "no-rules"):
            rules = name == "rules"
    limit = 1000
    if "limit" in options:
        value = str(options["limit"])
        # ASCII digits only ('²' is a digit to str.isdigit), and few enough
        # of them for int() (which refuses thousands of digits).
        if not (value.isascii() and value.isdigit() and len(value) <= 10) or not (
            1 <= int(value) <= 10**9
        ):
            raise usage(f"{USAGE} (--limit takes a number from 1 up)")
        limit = int(value)
    if len(operands) != 1:
        raise usage(USAGE)
    dialect = _dialect.name_of(options.get("dialect"), USAGE)
    return operands[0], rules, "json" in options, limit, dialect


def text(report: ValidationReport) -> str:
    """The human report."""
    name = report.name
    lines = [
        f"{name}: {report.records} records in {report.size} bytes; {report.kind_basis}",
    ]
    if report.dialect_basis:
        lines.append(f"{name}: {report.dialect_basis}")
    lines += [f"{name}: {describe(finding)}" for finding in report.findings]
    if report.sound:
        verdict = f"{name}: sound"
        if report.kind == "tcprules":
            tcprules = (
                "tcprules" if report.dialect == "ucspi-tcp" else f"{report.dialect}'s tcprules"
            )
            verdict += f"; every record is one {tcprules} can write"
        if not report.canonical:
            verdict += (
                f" (note: it is not laid out as cdbmake and tcprules write it: "
                f"{report.layout_note}; lookups are not affected)"
            )
        lines.append(verdict)
    else:
        total = len(report.findings) + report.suppressed
        verdict = f"{name}: NOT sound: {total} problem{'s' if total != 1 else ''}"
        if report.suppressed:
            verdict += f" ({report.suppressed} not shown: --limit keeps more)"
        lines.append(verdict)
    return "\n".join(lines) + "\n"


def main(command: str, args: list[str]) -> int:
    parsed = _parse(args)
    if parsed is None:
        write_out(HELP)
        return 0
    path, rules, as_json, limit, dialect = parsed
    try:
        report = validate_rules(path, rules=rules, limit=limit, dialect=dialect)
    except OSError as exc:
        raise Fatal(111, f"unable to read {path}: {oserror_text(exc)}") from None
    out = json.dumps(report.as_dict()) + "\n" if as_json else text(report)
    try:
        # A file name that is not UTF-8 comes out as the bytes it is made of.
        binary = stdout()
        binary.write(out.encode("utf-8", "surrogateescape"))
        binary.flush()
    except OSError as exc:
        raise Fatal(111, f"unable to write output: {oserror_text(exc)}") from None
    return 0 if report.sound else 100
