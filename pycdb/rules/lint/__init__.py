"""What a rules database really does, and what is wrong with it.

An administrator who inherits ``/etc/tcp.smtp`` or ``/etc/tcp.smtp.cdb``
needs to know what it allows, and above all whether it makes qmail an
open relay.  :func:`lint` answers with a :class:`LintReport` of findings
(:class:`pycdb.findings.Finding`), each with a severity, a stable
``code`` (:data:`CODES`), the line (rules text) or the key (a cdb), and
a message that carries the reasoning, so that a person can act on it
without reading ucspi-tcp's sources.

Two kinds of input, one judgement: each key is judged by the record
tcpserver would use, whether it comes from a line of text or from a
database.  The rooms:

* :mod:`.sniff`: which file is which (a cdb or rules text), and reading
  it, through the one routine that opens files (:mod:`pycdb._files`);
* :mod:`.text`: lint of rules text, line by line as tcprules reads it;
* :mod:`.cdb`: lint of a rules cdb, record by record as tcpserver reads it;
* :mod:`.stale`: is the cdb what tcprules makes of the text;
* :mod:`.judge`: what tcpserver does with one record, and with the file
  as a whole;
* :mod:`.keys`: which connections reach a key, and why none does (on
  :mod:`pycdb.rules.forms`, which knows the forms of tcprules keys);
* :mod:`.relay`: who can relay, the relay judge;
* :mod:`.runscript`: the rules tcpserver -H and -R make unreachable;
* :mod:`.wording`: how messages write records, data and names;
* :mod:`.report`: the codes, and the report for one file.
"""

from __future__ import annotations

import os
import stat

from ...findings import Finding, Severity
from .cdb import lint_cdb
from .report import CODES, Kind, LintReport
from .sniff import detect, detect_bytes, read
from .text import lint_text

__all__ = [
    "CODES",
    "Finding",
    "Kind",
    "LintReport",
    "Severity",
    "detect",
    "detect_bytes",
    "lint",
    "lint_cdb",
    "lint_text",
]


def lint(
    path: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    cdb: str | os.PathLike[str] | None = None,
    paranoid: bool = False,
    no_dns: bool = False,
    no_ident: bool = False,
    dialect: str | None = None,
) -> LintReport:
    """Lint the file at ``path``: a rules cdb or rules text, as ``kind``
    says or, by default, as :func:`detect_bytes` tells from its bytes.
    The file is read once (see :func:`.sniff.read`: a pipe works, a device
    is refused).  ``cdb`` (text only) names the database compiled from
    it, to check it is not stale; ValueError when the file is a cdb.
    ``paranoid`` says tcpserver runs with ``-p``; ``no_dns`` and
    ``no_ident`` that it runs with ``-H`` and ``-R``.  ``dialect`` names
    the tcprules and tcpserver (:mod:`pycdb.rules.dialects`): rules text
    is read in ucspi-tcp 0.88's by default, a cdb in the one its keys show
    (see :func:`lint_cdb`).  OSError when a file cannot be read."""
    name = os.fsdecode(path)
    data, st = read(path)
    if kind is None:
        kind = detect_bytes(data, name)
    if kind == "cdb":
        if cdb is not None:
            raise ValueError("cdb= compares rules text with its database; this file is a cdb")
        return lint_cdb(
            data,
            name=name,
            paranoid=paranoid,
            st=st,
            no_dns=no_dns,
            no_ident=no_ident,
            dialect=dialect,
        )
    modified = st.st_mtime_ns if stat.S_ISREG(st.st_mode) else None
    return lint_text(
        data,
        filename=name,
        cdb=cdb,
        paranoid=paranoid,
        modified=modified,
        no_dns=no_dns,
        no_ident=no_ident,
        dialect=dialect,
    )
