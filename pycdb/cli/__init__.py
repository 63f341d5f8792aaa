"""The ``pycdb`` command: drop-ins for djb's cdb tools and ucspi-tcp's
tcprules/tcprulescheck, plus validation, lint and decompilation.

Each command lives in its own module with a ``main(argv) -> int``; this
module only dispatches, and is the one place that turns an unexpected
exception into ``pycdb: fatal: ...`` instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable

from .._version import __version__
from ._util import Fatal, write_err

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


def main(argv: list[str] | None = None) -> int:
    """Run ``pycdb`` with ``argv`` (default ``sys.argv[1:]``); return the
    exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        write_err(f"pycdb: {USAGE}\n")
        return 100
    command, rest = args[0], args[1:]
    if command in ("-h", "--help", "help"):
        sys.stdout.write(_help())
        return 0
    if command in ("-V", "--version"):
        sys.stdout.write(f"pycdb {__version__}\n")
        return 0
    if command not in COMMANDS:
        write_err(f"pycdb: unknown command {command!r}; {USAGE}\n")
        return 100
    try:
        module = importlib.import_module(f"{__name__}.{COMMANDS[command][0]}")
        handler: Callable[[str, list[str]], int] = module.main
        return handler(command, rest)
    except Fatal as exc:
        write_err(f"pycdb: fatal: {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        write_err(f"pycdb: fatal: internal error: {type(exc).__name__}: {exc}\n")
        return 111


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
