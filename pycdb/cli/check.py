"""``pycdb check RULES.cdb``: tcprulescheck, and a little more.

Without options it is a drop-in for ucspi-tcp's ``tcprulescheck``: the
connection comes from ``TCPREMOTEIP`` (default ``0.0.0.0``),
``TCPREMOTEHOST`` and ``TCPREMOTEINFO`` (set but empty counts as given),
and the output is tcprulescheck's, byte for byte: ``rule KEY:``, then one
line per item up to the first ``D`` item (``deny connection``, the last
line) or ``set environment variable NAME=VALUE`` for a ``+`` item (the
item as it stands, ``=`` or not), then ``allow connection``; or
``default:`` and ``allow connection`` when no key matched.  Exit 0; 111
with ``pycdb: fatal: unable to read FILE: ...`` when the file cannot be
read or is corrupt (tcprulescheck says ``tcprulescheck: fatal: ...``,
with djb's wording of the error); 100 for bad usage.

``--ip``, ``--host``, ``--info`` give the connection on the command line
instead (each overrides its variable; an empty value is a value).
``--json`` prints tcpserver's decision as one JSON object instead:
``rule`` (the key, or null for the default), ``allowed``, ``env`` (what
tcpserver would set: a ``+NAME`` item without ``=`` sets nothing, and
items after a ``D`` still count), ``data`` (the raw record).  Text in
``rule`` and ``env`` is the key's and the values' bytes as UTF-8, a byte
that is not UTF-8 appearing as a lone surrogate U+DC80..U+DCFF (Python's
``surrogateescape``: ``.encode("utf-8", "surrogateescape")`` gives the
bytes back); ``data`` has one character per byte, U+0000..U+00FF
(``.encode("latin-1")`` gives the bytes back).

Deliberate differences: a second operand is a usage error (tcprulescheck
ignores it, which would silently check the wrong connection for
``pycdb check rules.cdb 1.2.3.4``); an error writing standard output is
reported (exit 111) where tcprulescheck ignores it.
"""

from __future__ import annotations

import ipaddress
import json
import os

from .._files import looks_like_text
from ..errors import CorruptError
from ..rules.ruleset import Decision, RuleSet
from ._util import DjbOutput, Fatal, oserror_text, split_options, usage, write_out

USAGE = "pycdb check RULES.cdb [--ip IP] [--host HOST] [--info INFO] [--json]"

HELP = f"""usage: {USAGE}

Print the decision tcpserver -x RULES.cdb makes for a connection, as
tcprulescheck does.  The connection is TCPREMOTEIP (default 0.0.0.0),
TCPREMOTEHOST and TCPREMOTEINFO from the environment, or:

  --ip IP        the remote address (overrides TCPREMOTEIP)
  --host HOST    the remote host name (overrides TCPREMOTEHOST)
  --info INFO    the remote ident answer (overrides TCPREMOTEINFO)
  --json         print tcpserver's decision as JSON: rule, allowed, env, data
  --             end of options (for a file name starting with -)

Exit 0; 111 when RULES.cdb cannot be read; 100 for bad usage.
"""

_VALUED = ("ip", "host", "info")


def tcprulescheck_text(decision: Decision) -> bytes:
    """tcprulescheck's output for ``decision``: it stops at the first
    ``D`` item and shows every ``+`` item as it stands."""
    key = decision.key
    if key is None:
        return b"default:\nallow connection\n"
    lines = [b"rule ", key, b":\n"]
    items = decision.data.split(b"\0")
    items.pop()  # bytes after the last NUL are not an item
    for item in items:
        kind = item[:1]
        if kind == b"D":
            lines.append(b"deny connection\n")
            return b"".join(lines)
        if kind == b"+":
            lines += (b"set environment variable ", item[1:], b"\n")
    lines.append(b"allow connection\n")
    return b"".join(lines)


def json_text(decision: Decision) -> bytes:
    """The decision as one JSON object (see the module docstring for the
    text encodings)."""
    obj = {
        "rule": decision.rule,
        "allowed": decision.allowed,
        "env": decision.env,
        "data": decision.data.decode("latin-1"),
    }
    return json.dumps(obj, ensure_ascii=True).encode("ascii") + b"\n"


def _looks_like_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse(args: list[str]) -> tuple[str, dict[str, bytes], bool] | None:
    """(file, given connection values, json); None when help was asked."""
    parsed = split_options(
        args, USAGE, flags=("json",), valued={name: "a value" for name in _VALUED}
    )
    if parsed is None:
        return None
    options, operands = parsed
    values = {name: os.fsencode(str(options[name])) for name in _VALUED if name in options}
    if not operands:
        raise usage(USAGE)
    if len(operands) > 1:
        stray = operands[1]
        hint = f" (a connection from {stray} is --ip {stray})" if _looks_like_ip(stray) else ""
        raise Fatal(100, f"unexpected operand {stray!r}{hint}; usage: {USAGE}")
    return operands[0], values, "json" in options


def main(command: str, args: list[str]) -> int:
    parsed = _parse(args)
    if parsed is None:
        write_out(HELP)
        return 0
    path, values, as_json = parsed
    environ = os.environb
    ip = values.get("ip", environ.get(b"TCPREMOTEIP", b"0.0.0.0"))
    host = values["host"] if "host" in values else environ.get(b"TCPREMOTEHOST")
    info = values["info"] if "info" in values else environ.get(b"TCPREMOTEINFO")
    try:
        # tcprulescheck opens the file once: no reloading needed.
        with RuleSet(path, reload_interval=float("inf")) as rules:
            decision = rules.check(ip, host, info)
    except CorruptError as exc:
        if looks_like_text(path):
            raise Fatal(
                111,
                f"unable to read {path}: it holds rules text, not a database; compile it "
                f"first: pycdb make {path}.cdb {path}.tmp < {path}",
            ) from None
        detail = str(exc)
        prefix = f"{path}: "
        if detail.startswith(prefix):
            detail = detail[len(prefix) :]
        raise Fatal(111, f"unable to read {path}: {detail}") from None
    except OSError as exc:
        raise Fatal(111, f"unable to read {path}: {oserror_text(exc)}") from None
    out = DjbOutput()
    out.put(json_text(decision) if as_json else tcprulescheck_text(decision))
    out.flush()
    return 0
