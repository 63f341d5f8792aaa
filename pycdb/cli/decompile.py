"""``pycdb decompile FILE``: the rules text of a tcprules database.

Prints, on standard output, text from which ``tcprules`` rebuilds FILE
byte for byte (see :mod:`pycdb.rules.decompile` for how it is written).
The whole file is checked before anything is printed; when no text can
rebuild it, nothing is printed and it exits 100 saying why:
``pycdb: fatal: FILE: record at offset N (key ...): why`` for a record
tcprules cannot have written, or the first structural problem for a file
that is not a sound cdb, or is not laid out as tcprules lays it out.

``--salvage`` prints the rules that can be read anyway (impossible
records become ``#`` comments saying which and why), warns on standard
error that the text does not rebuild the file, and exits 0: the way to
recover the rules of a damaged database.  ``--no-comment`` leaves out the
first ``#`` line saying where the text came from.

Exit 0 done, 100 no text rebuilds FILE (or bad usage), 111 FILE cannot be
read or the output cannot be written.
"""

from __future__ import annotations

from ..errors import DecompileError
from ..rules.decompile import decompile
from . import _dialect
from ._util import Fatal, oserror_text, split_options, stdout, usage, write_err, write_out

USAGE = f"pycdb decompile FILE [--salvage] [--no-comment] {_dialect.OPTION}"

HELP = f"""usage: {USAGE}

Print tcprules text from which `tcprules FILE FILE.tmp` rebuilds FILE byte
for byte: the records in file order, consecutive numbered keys with the
same data folded back into ranges, each value quoted with a delimiter it
does not contain.  When no text can rebuild FILE (a key no rules line
produces, data that is not tcprules data, a damaged or differently laid
out cdb), print nothing and exit 100 naming the record and the reason.

  --salvage      print the rules that can be read anyway, with a warning
  --no-comment   leave out the first line, a comment naming FILE
{_dialect.HELP}
                 (without it: the one the keys show, else 0.88; a note on
                 standard error names a recognised one)
  --             end of options (for a file name starting with -)

Exit 0 done, 100 no text rebuilds FILE, 111 FILE cannot be read.
"""


def _parse(args: list[str]) -> tuple[str, bool, bool, str | None] | None:
    """(file, salvage, comment, dialect); None when help was asked."""
    parsed = split_options(
        args, USAGE, flags=("salvage", "no-comment"), valued={"dialect": "a dialect"}
    )
    if parsed is None:
        return None
    options, operands = parsed
    if len(operands) != 1:
        raise usage(USAGE)
    dialect = _dialect.name_of(options.get("dialect"), USAGE)
    return operands[0], "salvage" in options, "no-comment" not in options, dialect


def main(command: str, args: list[str]) -> int:
    parsed = _parse(args)
    if parsed is None:
        write_out(HELP)
        return 0
    path, salvage, comment, dialect = parsed
    try:
        text = decompile(path, salvage=salvage, comment=comment, dialect=dialect)
    except DecompileError as exc:
        raise Fatal(100, str(exc)) from None
    except OSError as exc:
        raise Fatal(111, f"unable to read {path}: {oserror_text(exc)}") from None
    if dialect is None and text.report.dialect_basis:
        write_err(f"pycdb: note: {path}: {text.report.dialect_basis}; written in that dialect\n")
    out = stdout()
    with text:
        try:
            for chunk in text.chunks():
                out.write(chunk)
            out.flush()
        except OSError as exc:
            raise Fatal(111, f"unable to write output: {oserror_text(exc)}") from None
    if not text.exact:
        for note in text.notes:
            write_err(f"pycdb: warning: {path}: the text does not rebuild the file: {note}\n")
        if text.skipped:
            write_err(
                f"pycdb: warning: {path}: left out {text.skipped} record"
                f"{'s' if text.skipped != 1 else ''} no rules line can produce "
                "(see the '# skipped' lines)\n"
            )
    return 0
