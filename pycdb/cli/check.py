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

Dialects (docs/dialects.md).  ``--dialect ucspi-tcp-ipv6`` or ``--dialect
ucspi-tcp6`` makes it a drop-in for that fork's tcprulescheck (its key
order, its way of printing a CIDR rule, its default TCPREMOTEIP).
Without ``--dialect``, a database whose keys only one fork writes is
recognised and checked in that fork's dialect, with a note on standard
error; otherwise it is ucspi-tcp 0.88's.  Unlike tcprulescheck 0.88,
which would look up any text, an IPv6 TCPREMOTEIP on a 0.88 database is
an error (exit 100) naming the dialects that take it, since 0.88's
tcpserver never gives one; ``::ffff:a.b.c.d``, a dual-stack socket's view
of an IPv4 client, is checked as ``a.b.c.d``, with a note.  In the forks,
TCPREMOTEIP is used as given, as their tcprulescheck uses it, with a
warning when their tcpserver would write that client otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import TYPE_CHECKING

from .._files import looks_like_text
from ..errors import CorruptError, RulesSyntaxError
from ..rules.dialects import CLASSIC, FEFE, FEH, Dialect, client_address, get
from ..rules.explain import Explanation, explain
from ..rules.ruleset import Decision, RuleSet
from . import _dialect
from ._util import DjbOutput, Fatal, oserror_text, split_options, usage, write_err, write_out

if TYPE_CHECKING:
    from ..remotehost import RemoteHost

USAGE = (
    "pycdb check RULES.cdb [--ip IP] [--host HOST] [--info INFO] [--json]"
    " [--lookup [--paranoid|--no-paranoid] [--dns-server IP] [--timeout SECONDS]]"
    f" [--explain [--rules FILE]] {_dialect.OPTION}"
)

HELP = f"""usage: {USAGE}

Print the decision tcpserver -x RULES.cdb makes for a connection, as
tcprulescheck does.  The connection is TCPREMOTEIP (default 0.0.0.0),
TCPREMOTEHOST and TCPREMOTEINFO from the environment, or:

  --ip IP        the remote address (overrides TCPREMOTEIP)
  --host HOST    the remote host name (overrides TCPREMOTEHOST)
  --info INFO    the remote ident answer (overrides TCPREMOTEINFO)
  --json         print tcpserver's decision as JSON: rule, allowed, env, data
  --lookup       compute TCPREMOTEHOST from the IP address as tcpserver does
                 (its PTR name; with paranoid mode only when the name's A
                 records, AAAA for IPv6, include the address) instead of
                 taking it from --host or the environment; --json adds
                 "host" and "lookup" (the outcome: why there is no name)
    --paranoid       keep the name only when confirmed: tcpserver -p (default)
    --no-paranoid    keep the PTR name unchecked: tcpserver -P
    --dns-server IP  ask this DNS server (default: $DNSCACHEIP, as tcpserver;
                     else /etc/resolv.conf's)
    --timeout SECONDS  give up the lookup after this long (default 10):
                     no name, as tcpserver after a failed lookup
    A lookup that fails (timeout, SERVFAIL, no server) is said in one
    "pycdb: warning:" line; the output and exit code stay the same.
  --explain      list every key tcpserver tries, in its order, which one
                 decided and why (with --json: "explain")
    --rules FILE     the rules text RULES.cdb was compiled from: also name
                     the line that wrote the deciding record
{_dialect.HELP}
                 (without it: the one a database's keys show, else 0.88)
  --             end of options (for a file name starting with -)

Exit 0; 111 when RULES.cdb cannot be read; 100 for bad usage, and for
an IPv6 TCPREMOTEIP on an ucspi-tcp 0.88 database (its tcpserver has no
IPv6; ::ffff:a.b.c.d is checked as a.b.c.d).  With --dialect ucspi-tcp6,
TCPREMOTEIP defaults to 0, as its tcprulescheck's does.
"""

_VALUED = ("ip", "host", "info")
#: A --timeout: a decimal number in ASCII, with an exponent if need be.
_SECONDS = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LOOKUP_FLAGS = ("lookup", "paranoid", "no-paranoid", "explain")
_LOOKUP_VALUED = {"dns-server": "an IP address", "timeout": "seconds", "rules": "a file"}


def tcprulescheck_text(decision: Decision, dialect: str | Dialect | None = None) -> bytes:
    """tcprulescheck's output for ``decision``: it stops at the first
    ``D`` item and shows every ``+`` item as it stands.  ``dialect``'s
    tcprulescheck names the deciding key (ucspi-tcp6's prints a CIDR key
    as its network, and the empty key as ``default:``)."""
    key = decision.key
    if key is None:
        return b"default:\nallow connection\n"
    lines = [b"rule ", key, b":\n"] if dialect is None else [get(dialect).rule_shown(key), b"\n"]
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


def _parse(args: list[str]) -> tuple[str, dict[str, bytes], bool, _More] | None:
    """(file, given connection values, json, the lookup and explain
    options); None when help was asked."""
    parsed = split_options(
        args,
        USAGE,
        flags=("json", *_LOOKUP_FLAGS),
        valued={
            **{name: "a value" for name in _VALUED},
            **_LOOKUP_VALUED,
            "dialect": "a dialect",
        },
    )
    if parsed is None:
        return None
    options, operands = parsed
    more = _more(options)
    values = {name: os.fsencode(str(options[name])) for name in _VALUED if name in options}
    dialect = _dialect.name_of(options.get("dialect"), USAGE)
    if dialect is not None:
        values["dialect"] = dialect.encode()  # main() takes it out
    if not operands:
        raise usage(USAGE)
    if len(operands) > 1:
        stray = operands[1]
        hint = f" (a connection from {stray} is --ip {stray})" if _looks_like_ip(stray) else ""
        raise Fatal(100, f"unexpected operand {stray!r}{hint}; usage: {USAGE}")
    if more.lookup and "host" in values:
        raise usage(f"{USAGE} (--host and --lookup exclude each other)")
    return operands[0], values, "json" in options, more


def main(command: str, args: list[str]) -> int:
    parsed = _parse(args)
    if parsed is None:
        write_out(HELP)
        return 0
    path, values, as_json, more = parsed
    given = values.pop("dialect", None)
    lang = get(_dialect.chosen(path, None if given is None else given.decode(), "checked"))
    environ = os.environb
    ip = values.get("ip", environ.get(b"TCPREMOTEIP", lang.default_ip))
    host = values["host"] if "host" in values else environ.get(b"TCPREMOTEHOST")
    info = values["info"] if "info" in values else environ.get(b"TCPREMOTEINFO")
    ip = _client_ip(ip, lang)
    lookup_ip = _lookup_ip(ip) if more.lookup else None
    rules_text = _rules_text(more.rules) if more.rules is not None else None
    found = None
    explanation = None
    try:
        # tcprulescheck opens the file once: no reloading needed.  It is
        # opened before the lookup, so a bad path is said at once.
        with RuleSet(path, reload_interval=float("inf"), dialect=lang.name) as rules:
            if lookup_ip is not None:
                found = _look_up(lookup_ip, more)
                host = None if found.host is None else found.host.encode("ascii")
            if more.explain:
                explanation = explain(
                    path, ip, host, info, rules=rules_text, rules_name=more.rules, dialect=lang.name
                )
            decision = rules.check_text(ip, host, info)
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
    except RulesSyntaxError as exc:
        raise Fatal(100, str(exc)) from None
    if found is not None and found.temporary and not as_json:
        # The text is tcprulescheck's, which cannot say that the name is
        # missing only because DNS failed (--json says it in "lookup").
        write_err(
            f"pycdb: warning: the lookup for {found.ip} failed ({found.outcome}: "
            f"{found.detail}): checked with no TCPREMOTEHOST, as tcpserver goes on "
            "after a failed lookup\n"
        )
    out = DjbOutput()
    if as_json:
        out.put(_json_more(decision, found, explanation) if more.used else json_text(decision))
    elif explanation is not None:
        out.put(explanation.text().encode("utf-8", "surrogateescape"))
    else:
        out.put(tcprulescheck_text(decision, lang))
    out.flush()
    return 0


# ---- --lookup and --explain --------------------------------------------------------


class _More:
    """The options beyond tcprulescheck's: --lookup and its settings,
    --explain and --rules."""

    def __init__(self) -> None:
        self.lookup = False
        self.paranoid = True
        self.dns_server: str | None = None
        self.timeout: float | None = None  # pycdb.remotehost's default
        self.explain = False
        self.rules: str | None = None

    @property
    def used(self) -> bool:
        return self.lookup or self.explain


def _more(options: dict[str, str | bool]) -> _More:
    """The --lookup and --explain options; a usage error for one that
    goes with an option not given, or a bad value."""
    more = _More()
    more.lookup = "lookup" in options
    more.explain = "explain" in options
    settings = [n for n in ("paranoid", "no-paranoid", "dns-server", "timeout") if n in options]
    if settings and not more.lookup:
        raise usage(f"{USAGE} (--{settings[0]} goes with --lookup)")
    if "rules" in options and not more.explain:
        raise usage(f"{USAGE} (--rules goes with --explain)")
    # The last of --paranoid and --no-paranoid wins (options keep the order last given).
    modes = [name for name in options if name in ("paranoid", "no-paranoid")]
    more.paranoid = not modes or modes[-1] == "paranoid"
    if "dns-server" in options:
        server = str(options["dns-server"])
        if not _looks_like_ip(server):
            raise usage(f"{USAGE} (--dns-server needs an IP address, not {server!r})")
        more.dns_server = server
    if "timeout" in options:
        text = str(options["timeout"])
        try:
            # ASCII only: float() also reads other scripts' digits,
            # underscores and blanks around the number.
            seconds = float(text) if _SECONDS.fullmatch(text) else float("nan")
        except ValueError:
            seconds = float("nan")
        more.timeout = seconds
        if not 0 < seconds < float("inf"):
            raise usage(f"{USAGE} (--timeout needs a positive number of seconds, not {text!r})")
    if "rules" in options:
        more.rules = str(options["rules"])
    return more


def _lookup_ip(ip: bytes) -> str:
    """``ip`` as text for --lookup; a usage error when it is no IP address."""
    text = ip.decode("ascii", "replace")
    if not _looks_like_ip(text):
        raise Fatal(100, f"--lookup needs an IP address, not {text!r}")
    return text


def _look_up(text: str, more: _More) -> RemoteHost:
    """TCPREMOTEHOST for the IP address ``text`` as tcpserver computes it
    (-p or -P)."""
    from ..remotehost import DEFAULT_TIMEOUT, RemoteHostResolver  # dnspython only when asked

    resolver = RemoteHostResolver(
        paranoid=more.paranoid,
        nameservers=None if more.dns_server is None else [more.dns_server],
        timeout=DEFAULT_TIMEOUT if more.timeout is None else more.timeout,
        cache=False,
    )
    return resolver.lookup(text)


def _rules_text(name: str) -> bytes:
    """The --rules file's bytes (read once, as every file is read)."""
    from ..rules.lint.sniff import read

    try:
        return read(name)[0]
    except OSError as exc:
        raise Fatal(111, f"unable to read {name}: {oserror_text(exc)}") from None


def _json_more(
    decision: Decision, found: RemoteHost | None, explanation: Explanation | None
) -> bytes:
    """The JSON object with "host" and "lookup" (--lookup) and "explain"
    (--explain) after tcprulescheck's four members."""
    obj = json.loads(json_text(decision))
    if found is not None:
        obj["host"] = found.host
        obj["lookup"] = found.as_dict()
    if explanation is not None:
        obj["explain"] = explanation.as_dict()
    return json.dumps(obj, ensure_ascii=True).encode("ascii") + b"\n"


def _client_ip(ip: bytes, lang: Dialect) -> bytes:
    """TCPREMOTEIP as the check uses it: as given, as tcprulescheck uses
    it, except that 0.88 refuses an IPv6 address (its tcpserver has none)
    and takes ``::ffff:a.b.c.d`` for the IPv4 client it is; a note or a
    warning on standard error says so, and says when the dialect's
    tcpserver would have written the address otherwise."""
    if b":" not in ip:
        return ip
    address = client_address(ip)
    if address is None:
        return ip
    shown = ip.decode("ascii")
    if lang.name == CLASSIC:
        if address.version == 6 and address.ipv4_mapped is None:
            raise Fatal(
                100,
                f"TCPREMOTEIP {shown} is an IPv6 address, and ucspi-tcp 0.88's tcpserver has no "
                "IPv6, so no 0.88 rules database is ever asked about one; for a database built "
                "by an IPv6 tcprules, give --dialect ucspi-tcp-ipv6 (Debian's ucspi-tcp-ipv6) "
                "or --dialect ucspi-tcp6 (fehQlibs' ucspi-tcp6)",
            )
        as_ipv4 = lang.client_text(address)
        write_err(
            f"pycdb: note: {shown} is the IPv4 client {as_ipv4.decode()} seen by a dual-stack "
            "socket; checked as that client, as ucspi-tcp 0.88's tcpserver writes it\n"
        )
        return as_ipv4
    if lang.name == FEH and address.version == 6 and address.ipv4_mapped is None:
        return ip  # ucspi-tcp6 reads any spelling of an IPv6 address into its full form
    writes = {lang.client_text(address)}
    if lang.name == FEFE:
        writes.add(lang.client_text(address, mapped_as_ipv6=True))  # tcpserver -6
    if ip not in writes:
        spelled = " or ".join(sorted(w.decode() for w in writes))
        write_err(
            f"pycdb: warning: {lang.name}'s tcpserver writes this client as {spelled}, not "
            f"{shown}; checked as given, as its tcprulescheck does\n"
        )
    return ip
