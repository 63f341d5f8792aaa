"""What pycdb's drop-ins for freecdb's cdb tools share: their usage lines,
arguments, opening FILE, and standard output as djb's ``buffer_1``.

``pycdb cdbmake OUT TMP < input`` (:mod:`pycdb.cli.cdbmake`), ``pycdb dump
FILE`` (:mod:`pycdb.cli.dump`), ``pycdb get FILE KEY [SKIP]``
(:mod:`pycdb.cli.get`) and ``pycdb stats FILE`` (:mod:`pycdb.cli.stats`)
print the same bytes to standard output and exit with the same codes as
the Debian freecdb programs, for valid and for malformed files alike;
their messages are freecdb's with ``pycdb: fatal:`` in front
(docs/format.md §11).  The freecdb programs are the specification, so the
commands follow what they *do*, not what a cdb reader should do; how
freecdb reads a cdb, which ``get`` and ``stats`` reproduce, is
:mod:`pycdb.cli.freecdb`.

What reaches standard output before a fatal error follows djb's buffer
library: an 8192-byte buffer that a fatal error never flushes
(:class:`pycdb.cli._util.DjbOutput`), over a descriptor every piece is
written to at once (:class:`Stdout`).  Each command says which pieces it
puts.

Deliberate differences from freecdb that the commands share:

* ``dump``, ``get`` and ``stats`` take the cdb as a FILE argument instead
  of standard input.  FILE is opened without blocking
  (:func:`pycdb._files.open_read`), so a FIFO never makes a command wait
  at ``open()``.  A FILE that cannot be opened is ``unable to open FILE:
  ...`` (exit 111).  A directory is ``unable to read input: is a
  directory`` (111), what cdbdump and cdbstats say when standard input
  is one (Debian's cdbget crashes with SIGSEGV there).  A kind of file
  the command cannot read is ``unable to read FILE: not a regular file
  ...`` (111), never read: a device such as ``/dev/zero``, and for
  ``get`` and ``stats``, which map the file, a FIFO or pipe too (cdbget
  and cdbstats cannot seek in one either).
* Standard output closed under us (``pycdb dump big.cdb | head``) is exit
  111 with ``unable to write output: broken pipe``; the C programs are
  killed by SIGPIPE.
* ``-h``/``--help`` as the only argument prints the command's usage to
  stdout (exit 0); a file called ``--help`` can be given as ``./--help``.

System error texts are djb's ``error_str()`` wording (``_util.oserror_text``)
("file does not exist", "out of disk space", ...), so messages match
freecdb's.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from .._files import FileTypeError
from ._util import DjbOutput, Fatal, oserror_text, usage, write_out

#: BUFSIZE of cdbdump, cdbget and cdbstats: the pieces they read and write.
CHUNK = 1024
#: How much output pycdb gathers before handing it on.
BLOCK = 1 << 16

#: freecdb's messages for a read that fails.
PROTO = "unable to read input: protocol error"
TRUNCATED = "unable to read input: truncated file"

USAGE = {
    "cdbmake": "pycdb cdbmake OUT TMP",
    "dump": "pycdb dump FILE",
    "get": "pycdb get FILE KEY [SKIP]",
    "stats": "pycdb stats FILE",
}

HELP = {
    "cdbmake": "read +klen,dlen:key->data lines ended by an empty line from standard input\n"
    "and publish them as the cdb OUT, by way of TMP (freecdb's cdbmake OUT TMP)",
    "dump": "print every record of the cdb FILE in cdbmake's format (cdbdump < FILE)",
    "get": "print the data of the SKIP+1-th record for KEY; exit 100 when there is none\n"
    "(cdbget KEY [SKIP] < FILE); with --all, every record's data for KEY, in the\n"
    "order they were added, each followed by a newline (tinycdb's cdb -q -m FILE KEY)",
    "stats": "print the record count and the probe-distance histogram (cdbstats < FILE)",
}


def operands(command: str, args: list[str], low: int, high: int) -> list[str] | None:
    """``args`` when the command should run with them; None when it
    printed its usage (``-h`` or ``--help`` alone).  A usage error (exit
    100) unless there are ``low`` to ``high`` of them, before any file is
    opened or created."""
    if args in (["-h"], ["--help"]):
        write_out(f"usage: {USAGE[command]}\n{HELP[command]}\n")
        return None
    if not low <= len(args) <= high:
        raise usage(USAGE[command])
    return args


def unreadable(path: str, exc: OSError) -> Fatal:
    """The fatal error for a FILE that :mod:`pycdb._files` would not open
    or read (see the module docstring for the three wordings)."""
    if isinstance(exc, IsADirectoryError):
        # read(2) on a directory: what cdbdump and cdbstats say.
        return Fatal(111, "unable to read input: is a directory")
    if isinstance(exc, FileTypeError):
        return Fatal(111, f"unable to read {path}: {oserror_text(exc)}")
    return Fatal(111, f"unable to open {path}: {oserror_text(exc)}")


# ---------------------------------------------------------------------------
# standard output


class Stdout:
    """The file descriptor under djb's ``buffer_1``: every piece DjbOutput
    hands over is written through at once, and a failure is the C
    program's message, with djb's error text."""

    def __init__(self) -> None:
        out = sys.stdout
        if out is None:  # fd 1 was closed when the interpreter started
            raise Fatal(111, "unable to write output: file descriptor not open")
        self._out: BinaryIO = out.buffer
        self.verb = "write"

    def _fail(self, exc: OSError) -> Fatal:
        return Fatal(111, f"unable to {self.verb} output: {oserror_text(exc)}")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            self._out.write(data)
            self._out.flush()
        except OSError as exc:
            raise self._fail(exc) from None
        return len(data)

    def flush(self) -> None:
        try:
            self._out.flush()
        except OSError as exc:
            raise self._fail(exc) from None


def output() -> tuple[DjbOutput, Stdout]:
    """``buffer_1`` over standard output, and the descriptor under it."""
    raw = Stdout()
    return DjbOutput(raw), raw  # type: ignore[arg-type]


def finish(out: DjbOutput, raw: Stdout) -> None:
    """The final ``buffer_flush(buffer_1)``."""
    raw.verb = "flush"
    out.flush()
