"""``pycdb convert --from D1 --to D2 [FILE]``: rules text from one dialect
of the tcprules language to another (:mod:`pycdb.rules.convert`).

Reads the text from FILE, or standard input, as D1's tcprules reads it;
writes on standard output the same rules as D2's tcprules reads them,
line for line (so line numbers stay), where the meaning survives: each
rule decides the same clients at the same step of tcpserver's order.
Where it does not (an IPv6 rule for ucspi-tcp 0.88, a network no prefix
covers exactly, a rule that never matches in one dialect and would in the
other, ...), nothing is written and it exits 100 naming the line and why;
a line D1's tcprules refuses is reported as ``pycdb make`` reports it.

Exit 0 done, 100 a line that does not convert (or bad usage), 111 a
system error (the input cannot be read, the output cannot be written).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import DialectError, RulesSyntaxError
from ..rules.convert import convert
from ..rules.dialects import NAMES
from ..rules.language import source_chunks
from ..rules.reading import FileChunks
from . import _dialect
from ._util import Fatal, oserror_text, split_options, stdout, usage, write_out

_CHOICES = "|".join(NAMES)
USAGE = f"pycdb convert --from {_CHOICES} --to {_CHOICES} [FILE] (or < FILE)"

HELP = f"""usage: {USAGE}

Rewrite tcprules text from one dialect to another, where the meaning
survives: the same clients get the same rule.  The dialects:

  ucspi-tcp        djb's ucspi-tcp 0.88 (IPv4 only)
  ucspi-tcp-ipv6   Debian's ucspi-tcp-ipv6 (Felix von Leitner's IPv6 patch)
  ucspi-tcp6       fehQlibs' ucspi-tcp6 (CIDR, IPv6 in the full form)

  --from D     the dialect of the text read
  --to D       the dialect of the text written
  FILE         the rules text (default: standard input)

A line that does not convert stops it, nothing written, naming the line
and why.  tcpserver is assumed to run without ucspi-tcp-ipv6's -6.

Exit 0 done, 100 a line that does not convert or bad usage, 111 a
system error.
"""


def main(command: str, args: list[str]) -> int:
    parsed = split_options(args, USAGE, valued={"from": "a dialect", "to": "a dialect"})
    if parsed is None:
        write_out(HELP)
        return 0
    options, operands = parsed
    source = _dialect.name_of(options.get("from"), USAGE)
    target = _dialect.name_of(options.get("to"), USAGE)
    if source is None or target is None:
        raise usage(f"{USAGE} (--from and --to name the two dialects)")
    if len(operands) > 1:
        raise usage(USAGE)
    path = operands[0] if operands and operands[0] != "-" else None
    name = path or "-"
    try:
        if path is None:
            # File descriptor 0 itself, as pycdb make reads it, whatever sys.stdin is.
            chunks: Iterable[bytes] = FileChunks(os.fdopen(os.dup(0), "rb"), close=True)
        else:
            name, chunks = source_chunks(path)  # opened as every rules file is
        text = list(convert(chunks, source, target, name))
    except (RulesSyntaxError, DialectError) as exc:
        raise Fatal(100, str(exc)) from None
    except OSError as exc:
        raise Fatal(111, f"unable to read {name}: {oserror_text(exc)}") from None
    try:
        out = stdout()
        out.write(b"".join(text))
        out.flush()
    except OSError as exc:
        raise Fatal(111, f"unable to write output: {oserror_text(exc)}") from None
    return 0
