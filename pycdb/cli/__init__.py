"""The ``pycdb`` command: drop-ins for djb's cdb tools and ucspi-tcp's
tcprules/tcprulescheck, plus validation, lint and decompilation.

Each command lives in its own module with a ``main(command, args) -> int``; this
module only dispatches, and is the one place that turns an unexpected
exception into ``pycdb: fatal: ...`` instead of a traceback.
"""

from __future__ import annotations

import difflib
import importlib
import os
import signal
import sys
import warnings
from types import FrameType
from typing import Callable

from .._version import __version__
from ._util import Fatal, write_err, write_out

#: command -> (module, one-line summary).  Modules are imported on use,
#: so ``pycdb get`` does not pay for the rules machinery.
COMMANDS: dict[str, tuple[str, str]] = {
    "make": ("make", "compile tcprules text: pycdb make RULES.cdb RULES.tmp < rules"),
    "check": ("check", "tcpserver's decision for a connection (tcprulescheck RULES.cdb)"),
    "cdbmake": ("cdbmake", "build a cdb from cdbmake records: pycdb cdbmake OUT TMP < input"),
    "dump": ("dump", "print every record in cdbmake format: pycdb dump FILE"),
    "get": ("get", "print a key's value: pycdb get FILE KEY [SKIP]"),
    "stats": ("stats", "record count and probe distances: pycdb stats FILE"),
    "validate": ("validate", "check a cdb's structure (and its tcprules data)"),
    "lint": ("lint", "find open relays and other mistakes in rules text or a rules cdb"),
    "decompile": ("decompile", "print rules text that tcprules compiles back to FILE"),
    "convert": ("convert", "rewrite rules text between dialects: pycdb convert --from D1 --to D2"),
}

USAGE = "usage: pycdb COMMAND [ARGS...]  (pycdb --help lists the commands)"


def _help() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        f"pycdb {__version__}: cdb files and ucspi-tcp rules",
        "",
        "usage: pycdb COMMAND [ARGS...]",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        "pycdb COMMAND --help describes a command.  Exit codes follow djb's tools:",
        "0 success, 100 bad usage or bad input, 111 a system error.",
    ]
    return "\n".join(lines) + "\n"


class Killed(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (every ``except BaseException``
    cleans up what it made), then die of the signal (see :func:`run`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _warn(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """A warning as one line, ``pycdb: warning: ...``, never a source line."""
    write_err(f"pycdb: warning: {str(message).removeprefix('pycdb: ')}\n")


def _command(name: str) -> Callable[[str, list[str]], int]:
    handler: Callable[[str, list[str]], int] = importlib.import_module(
        f"{__name__}.{COMMANDS[name][0]}"
    ).main
    return handler


def _unknown(command: str) -> Fatal:
    near = difflib.get_close_matches(command, COMMANDS, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return Fatal(100, f"unknown command {command!r}{hint}; {USAGE}")


def _backend_ready() -> None:
    """Choose the backend now, so that a bad PYCDB_BACKEND is one fatal
    line (100 for a name that is none, 111 for a backend not built)."""
    from .. import _backend

    try:
        _backend.current()
    except ImportError as exc:
        forced = os.environ.get("PYCDB_BACKEND", "")
        code = 100 if forced not in _backend.NAMES else 111
        raise Fatal(code, str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Run ``pycdb`` with ``argv`` (default ``sys.argv[1:]``); return the
    exit code (0, 100 or 111, whatever state the standard streams are in;
    130 after Ctrl-C)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if not args:
            raise Fatal(100, USAGE)
        command, rest = args[0], args[1:]
        if command in ("-h", "--help"):
            write_out(_help())
            return 0
        if command == "help":
            if not rest:
                write_out(_help())
                return 0
            if rest[0] not in COMMANDS:
                raise _unknown(rest[0])
            command, rest = rest[0], ["--help"]
        if command in ("-V", "--version"):
            write_out(f"pycdb {__version__}\n")
            return 0
        if command not in COMMANDS:
            raise _unknown(command)
        with warnings.catch_warnings():
            warnings.showwarning = _warn
            _backend_ready()
            return _command(command)(command, rest)
    except Fatal as exc:
        write_err(f"pycdb: fatal: {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Killed:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        write_err(f"pycdb: fatal: internal error: {type(exc).__name__}: {exc}\n")
        return 111


def _killed(signum: int, frame: FrameType | None) -> None:
    raise Killed(signum)


def run() -> None:
    """Console-script entry point: :func:`main`, with the process-wide
    settings a command-line tool wants.  SIGTERM and SIGHUP unwind first,
    so nothing half-made is left behind, then kill the process with the
    same signal.  Whatever the state of the standard streams (closed,
    full, a broken pipe: Python ignores SIGPIPE, so a write fails with
    EPIPE), the exit code is main's: 111 if what it printed cannot be
    written, never a traceback."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _killed)
    try:
        code = main()
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except OSError:
            code = code or 111
    except Killed as exc:
        signal.signal(exc.signum, signal.SIG_DFL)
        os.kill(os.getpid(), exc.signum)
        code = 128 + exc.signum  # pragma: no cover - the signal ends us first
    # Nothing is left for the interpreter to flush, and fail on, at exit
    # (a failed flush there would make the exit code 120).
    sys.stdout = sys.stderr = None
    sys.exit(code)
