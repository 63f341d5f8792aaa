"""``pycdb lint FILE...``: what rules text or a rules cdb really does.

Prints one finding per line, the way compilers do, so editors and CI
annotate them::

    tcp.smtp:12: error: '=mx1.example.com' grants RELAYCLIENT by host name: ... [relay-by-name]
    tcp.smtp.cdb: key '=mx1.example.com': error: ... [relay-by-name]
    tcp.smtp: warning: there is no default rule ... [no-default]

(``FILE:LINE:`` for a line of text, ``FILE: key 'KEY':`` for a cdb
record, ``FILE:`` for the whole file), then a summary line ``FILE: N
errors, M warnings``.  ``--json`` prints one JSON object per file instead
(see :meth:`pycdb.rules.lint.LintReport.as_dict`).

Exit codes: lint's own contract first, 0 when no file has an error and 1
when one has (with ``--strict``, also for a warning); then the usual
ones, 111 when a file cannot be read (``pycdb: fatal: unable to read
FILE: ...``) and 100 for bad usage.

How FILE is read: a cdb when it starts with a sound cdb header (or is
named ``*.cdb``), rules text otherwise; ``--as-text``/``--as-cdb``
decide instead.  ``-`` is standard input.  Every FILE is read once, through
the routine that opens every file (:func:`pycdb.rules.lint.sniff.read`):
a FIFO or a pipe is read to its end (a FIFO with no writer as empty), and
a device such as ``/dev/zero`` is refused rather than read for ever; so
is standard input when it is one, unless it is a terminal.

``--dialect`` names the tcprules and tcpserver the rules are for
(docs/dialects.md): rules text is read as ucspi-tcp 0.88's unless it
says otherwise; a cdb whose keys only one IPv6 fork writes is judged in
that fork's dialect, and an info finding (``dialect``) says so.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from ..rules.lint import Kind, LintReport, detect_bytes, lint_cdb, lint_text
from ..rules.lint.sniff import read
from . import _dialect
from ._util import Fatal, oserror_text, split_options, stdout, usage

USAGE = (
    "pycdb lint [--as-text|--as-cdb] [--cdb RULES.cdb] [--paranoid] [--no-dns] [--no-ident]"
    " [--strict] [--json] FILE..."
)
#: With --dialect (kept apart, so that USAGE stays short).
DIALECT_USAGE = f"pycdb lint {_dialect.OPTION} ... FILE..."

HELP = f"""usage: {USAGE}
       {DIALECT_USAGE}

Say what tcpserver will do with the rules in FILE (tcprules text, or a
cdb compiled from it) and what is wrong with them: open relays, grants
by forgeable host names, keys that never match, duplicate keys, lines
tcprules ignores or refuses, and more.  One finding per line,
FILE:LINE: SEVERITY: MESSAGE [CODE], then a summary per file.

  --as-text        read FILE as rules text (by default: a cdb when it starts
                   with a sound cdb header or is named *.cdb, text otherwise)
  --as-cdb         read FILE as a cdb
  --cdb RULES.cdb  FILE is the text RULES.cdb was compiled from: report it
                   stale when compiling FILE does not give its bytes
  --paranoid       tcpserver runs with -p (host names are forward-confirmed):
                   RELAYCLIENT granted by host name is then no error
  --no-dns         tcpserver runs with -H (no host names): report the
                   rules on host names ('=...', 'user@=...'), which never fire
  --no-ident       tcpserver runs with -R (no ident): report the 'user@'
                   rules, which never fire
  --strict         exit 1 for warnings too
  --json           one JSON object per file instead of text
{_dialect.HELP}
                 (text: 0.88 unless given; a cdb: the one its keys show)
  -                standard input (as FILE)
  --               end of options

Exit codes: 0 no errors, 1 errors (or, with --strict, warnings);
111 a file cannot be read; 100 bad usage.
"""


class _Options:
    def __init__(self) -> None:
        self.kind: Kind | None = None
        self.cdb: str | None = None
        self.paranoid = False
        self.no_dns = False
        self.no_ident = False
        self.strict = False
        self.json = False
        self.dialect: str | None = None
        self.files: list[str] = []


def _parse(args: list[str]) -> _Options | None:
    """The options, or None when help was asked."""
    parsed = split_options(
        args,
        USAGE,
        flags=("as-text", "as-cdb", "paranoid", "strict", "json", "no-dns", "no-ident"),
        valued={"cdb": "a file", "dialect": "a dialect"},
    )
    if parsed is None:
        return None
    options, files = parsed
    opts = _Options()
    opts.files = files
    if "as-text" in options and "as-cdb" in options:
        raise usage(f"{USAGE} (--as-text and --as-cdb exclude each other)")
    if "as-text" in options:
        opts.kind = "text"
    elif "as-cdb" in options:
        opts.kind = "cdb"
    opts.paranoid = "paranoid" in options
    opts.no_dns = "no-dns" in options
    opts.no_ident = "no-ident" in options
    opts.strict = "strict" in options
    opts.json = "json" in options
    if "cdb" in options:
        opts.cdb = str(options["cdb"])
    opts.dialect = _dialect.name_of(options.get("dialect"), DIALECT_USAGE)
    if not opts.files:
        raise usage(USAGE)
    if opts.cdb is not None and len(opts.files) != 1:
        raise usage(f"{USAGE} (--cdb goes with one rules text FILE)")
    return opts


def _unreadable(name: str, exc: OSError) -> Fatal:
    return Fatal(111, f"unable to read {name}: {oserror_text(exc)}")


def _stdin() -> bytes:
    """Standard input read to its end: as typed at a terminal, otherwise
    through :func:`read` (a device is refused, and a pipe past 4 GiB)."""
    if sys.stdin is not None and sys.stdin.isatty():
        return sys.stdin.buffer.read()
    return read("/dev/stdin")[0]


def _read(path: str) -> tuple[bytes, os.stat_result | None]:
    """The bytes of an operand, and its status when it is a regular file;
    Fatal when it cannot be read."""
    try:
        if path == "-":
            return _stdin(), None
        data, st = read(path)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return data, st if stat.S_ISREG(st.st_mode) else None


def _lint_one(path: str, opts: _Options) -> LintReport:
    """The report for one operand; Fatal when it cannot be read."""
    kind = opts.kind
    contents = None  # read once: detection and lint see the same bytes
    if kind is None:
        contents = _read(path)
        kind = detect_bytes(contents[0], path)
    if kind == "cdb" and opts.cdb is not None:
        raise usage(f"{USAGE} (--cdb compares rules text with its cdb; {path} is a cdb)")
    data, st = contents or _read(path)
    if kind == "cdb":
        return lint_cdb(
            data,
            name=path,
            paranoid=opts.paranoid,
            st=st,
            no_dns=opts.no_dns,
            no_ident=opts.no_ident,
            dialect=opts.dialect,
        )
    try:
        return lint_text(
            data,
            filename=path,
            cdb=opts.cdb,
            paranoid=opts.paranoid,
            modified=None if st is None else st.st_mtime_ns,
            no_dns=opts.no_dns,
            no_ident=opts.no_ident,
            dialect=opts.dialect,
        )
    except OSError as exc:  # the --cdb database (or the temporary file it is compared with)
        name = exc.filename if isinstance(exc.filename, str) else str(opts.cdb)
        raise _unreadable(name, exc) from None


def _write(text: str) -> None:
    try:
        out = stdout()
        out.write(text.encode("utf-8", "surrogateescape"))
        out.flush()
    except OSError as exc:
        raise Fatal(111, f"unable to write output: {oserror_text(exc)}") from None


def main(command: str, args: list[str]) -> int:
    opts = _parse(args)
    if opts is None:
        _write(HELP)
        return 0
    code = 0
    for path in opts.files:
        report = _lint_one(path, opts)
        if opts.json:
            _write(json.dumps(report.as_dict(), ensure_ascii=True) + "\n")
        else:
            lines = [f.format(report.name) for f in report.findings]
            lines.append(report.summary())
            _write("\n".join(lines) + "\n")
        code = max(code, report.exit_code(opts.strict))
    return code
