"""What a rules database really does, and what is wrong with it.

An administrator who inherits ``/etc/tcp.smtp`` or ``/etc/tcp.smtp.cdb``
needs to know what it allows, and above all whether it makes qmail an
open relay.  :func:`lint` answers with findings (:class:`Finding`), each
with a severity, a stable ``code``, the line (rules text) or the key (a
cdb), and a message that carries the reasoning, so that a person can act
on it without reading ucspi-tcp's sources.

Two kinds of input, one judgement.  A cdb is judged record by record as
tcpserver reads it: the first record of each key (the one a lookup
returns) is read the way tcpserver's ``found()`` reads it, through
:class:`pycdb.rules.check.Decision` (a ``D`` item anywhere denies; a later
``+NAME=`` replaces an earlier one).  Rules text is read line by line with
:func:`pycdb.rules.language.parse_line`, the same tcprules parser that
``pycdb make`` uses, so the rules judged are exactly the records tcprules would write; on
top of that come the mistakes only the text shows (lines tcprules ignores
or refuses, ranges, CR line endings, inline comments, a stale database).
Unlike tcprules, lint carries on past a line tcprules refuses, so one run
lists every problem; a refused line that a simple repair makes valid
(its carriage return or its trailing comment removed) is judged as
repaired, so a CRLF file is still checked for open relays.

Which file is which (:func:`detect`): a cdb starts with a 2048-byte
header whose 256 entries each place a hash table after the header and
inside the file.  Text cannot pass that test (its bytes, read as
positions, point hundreds of megabytes in), so a file that passes is a
cdb; a file that fails it is rules text, unless its name ends in
``.cdb``, in which case it is a damaged cdb and reported as ``corrupt``.
``kind="text"``/``"cdb"`` overrides the guess.

Who can relay.  qmail-smtpd relays for a client when RELAYCLIENT is set,
whatever its value, and appends that value to every recipient.  So a
finding about relaying needs an allowing record whose data sets
RELAYCLIENT, on a key some client can reach.  How much that grants
depends on the key's form (docs/lookup-order.md §3):

* the empty key (the default) and ``=`` (any client with a PTR record):
  everybody, an open relay;
* ``=host``, ``=.suffix``, ``info@=host``: whoever can make a PTR record
  say so, which is anyone who controls the reverse DNS of an address they
  use, unless tcpserver runs with ``-p`` (it then uses a name only when
  it resolves back to the client's address); ``=.com`` is open even then;
* ``info@ip``: the ident answer comes from the client's own host, so
  this is a grant to whoever at that address can answer for the name;
* an address or a prefix: the TCP handshake vouches for it.  Only a
  whole public /8 is worth a warning.

A RELAYCLIENT set on a denying record does nothing (tcpserver closes the
connection), and a key no connection can produce (``=Mail.Example.com``,
``10.0.0.0/8``, ``192.168.1``) grants nothing: both are judged that way,
so lint does not raise false alarms about them (the key itself gets its
own warning).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import ipaddress
import mmap
import os
import re
import tempfile
from typing import Any, Literal

from .._format import parse_header
from .._text import show
from ..errors import CorruptError, DataError, RulesSyntaxError, TooLargeError
from ..reader import Reader
from .compiler import compile as compile_rules
from .data import Action, Env, decode
from .language import Rule, Source, parse_line, range_bounds, source_chunks
from .messages import CRLF
from .reading import lines
from .ruleset import Decision

__all__ = [
    "CODES",
    "Finding",
    "Kind",
    "Report",
    "Severity",
    "detect",
    "detect_bytes",
    "lint",
    "lint_cdb",
    "lint_text",
]

Severity = Literal["error", "warning", "info"]
Kind = Literal["text", "cdb"]

#: Every finding's code, its usual severity and what it is about (the
#: README of tests/fixtures/lint shows each one as a user sees it).
CODES: dict[str, tuple[Severity, str]] = {
    "open-relay": ("error", "everybody can relay: RELAYCLIENT on the default, '=' or '=.tld'"),
    "relay-by-name": ("error", "RELAYCLIENT granted by a host name that a PTR record can forge"),
    "syntax": ("error", "a line tcprules refuses (and with it the whole file)"),
    "crlf": ("error", "DOS line endings: tcprules refuses a line ending in a carriage return"),
    "inline-comment": ("warning", "a '#' comment after a rule: refused, or part of the key"),
    "indented-comment": ("error", "a comment after blanks is read as a rule, and refused"),
    "ipv6": ("error", "an IPv6 address or network, which tcprules 0.88 refuses"),
    "corrupt": ("error", "a cdb that tcpserver cannot read"),
    "stale": ("error", "the cdb is not what tcprules makes of the text (--cdb)"),
    "ident-relay": ("warning", "RELAYCLIENT granted on the client's own ident answer"),
    "broad-relay": ("warning", "RELAYCLIENT granted to a whole public /8"),
    "relayclient-value": ("warning", "a non-empty RELAYCLIENT, appended to every recipient"),
    "env-name": ("warning", "an environment name with blanks, odd bytes or the wrong case"),
    "duplicate-key": ("warning", "a key given again: tcpserver only reads its first record"),
    "uppercase-host": ("warning", "a host name with capitals: tcpserver's names are lower case"),
    "cidr": ("warning", "CIDR notation, which tcprules stores as a key that never matches"),
    "never-matches": ("warning", "a key no connection produces"),
    "misread-data": ("warning", "data tcpserver reads otherwise than tcprules wrote it"),
    "unreachable": ("warning", "a key the cdb's hash tables do not lead to"),
    "no-default": ("warning", "no default rule: every client not listed is allowed"),
    "empty": ("warning", "no rules at all: every client is allowed"),
    "no-colon": ("warning", "a line without ':', which tcprules ignores silently"),
    "range-empty": ("warning", "a range whose low bound is above its high bound: no rule"),
    "range-clipped": ("warning", "a range whose high bound above 255 is cut to 255"),
    "newer-text": ("info", "the text changed after the cdb was built, to the same bytes"),
}

_ENC = ("utf-8", "surrogateescape")

_REFUSED = "tcprules refuses this line (and with it the whole file): "


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing lint found.

    ``code`` is stable (see :data:`CODES`), for scripts; ``line`` is the
    line of rules text it concerns (None for a cdb, or for the file as a
    whole); ``key`` the key concerned, when one is (a cdb record's, or one
    a rules line adds); ``message`` says what tcpserver (or tcprules, or qmail) will do
    and why that matters.
    """

    severity: Severity
    code: str
    message: str
    line: int | None = None
    key: bytes | None = None

    def format(self, name: str) -> str:
        """The finding as a compiler prints one: ``FILE:LINE: severity:
        message [code]``, or ``FILE: key 'KEY': ...`` for a cdb record, or
        ``FILE: ...`` for the whole file."""
        if self.line is not None:
            where = f"{name}:{self.line}:"
        elif self.key is not None:
            where = f"{name}: key {_q(self.key)}:"
        else:
            where = f"{name}:"
        return f"{where} {self.severity}: {self.message} [{self.code}]"

    def as_dict(self) -> dict[str, Any]:
        """The finding for JSON: ``key`` as UTF-8 text, a byte that is not
        UTF-8 as a lone surrogate (``surrogateescape``, as ``pycdb check``
        writes keys)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "line": self.line,
            "key": None if self.key is None else self.key.decode(*_ENC),
            "message": self.message,
        }


@dataclasses.dataclass
class Report:
    """The findings for one file, in file order (whole-file findings last).

    ``rules`` counts the rules lines read (text) or the distinct keys
    (cdb); ``records`` the records the file holds or would compile to.
    """

    name: str
    kind: Kind
    findings: list[Finding] = dataclasses.field(default_factory=list)
    rules: int = 0
    records: int = 0

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def warnings(self) -> int:
        return self.count("warning")

    @property
    def infos(self) -> int:
        return self.count("info")

    def exit_code(self, strict: bool = False) -> int:
        """lint's contract: 1 when there is an error (with ``strict``, also
        a warning), else 0.  Infos never count."""
        return 1 if self.errors or (strict and self.warnings) else 0

    def summary(self) -> str:
        def n(count: int, word: str) -> str:
            return f"{count} {word}" + ("" if count == 1 else "s")

        parts = [n(self.errors, "error"), n(self.warnings, "warning")]
        if self.infos:
            parts.append(n(self.infos, "info"))
        return f"{self.name}: {', '.join(parts)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "kind": self.kind,
            "rules": self.rules,
            "records": self.records,
            "errors": self.errors,
            "warnings": self.warnings,
            "infos": self.infos,
            "findings": [f.as_dict() for f in self.findings],
        }


# ---- showing bytes -------------------------------------------------------------


def _q(text: bytes) -> str:
    """Bytes in quotes, control and non-UTF-8 bytes escaped."""
    return f"'{show(text)}'"


def _s(text: str) -> str:
    """A decoded name or value (surrogateescape) in quotes."""
    return _q(text.encode(*_ENC))


def _reading(decision: Decision) -> str:
    """A record's data as tcpserver reads it, written as a rule would be."""
    if not decision.allowed:
        return "deny"
    env = "".join(
        f',{show(n.encode(*_ENC))}="{show(v.encode(*_ENC))}"' for n, v in decision.env.items()
    )
    return "allow" + env


def _written(data: bytes) -> str:
    """A record's data as the tcprules text that writes it (or the raw
    bytes, when tcprules could not have written it)."""
    try:
        action, env = decode(data)
    except DataError:
        return f"data {_q(data)}"
    return _text_of(action, env)


def _record(key: bytes, data: bytes) -> str:
    return _q(key + b":" + _written(data).encode(*_ENC))


# ---- the form of a key: who can reach it ------------------------------------------

_OCTET = rb"(?:0|[1-9][0-9]{0,2})"
_IP_RE = re.compile(rb"%s(?:\.%s){3}\Z" % (_OCTET, _OCTET))
_PREFIX_RE = re.compile(rb"(?:%s\.){1,3}\Z" % _OCTET)
_DOTTED = re.compile(rb"[0-9.]+\Z")
_LABEL = rb"(?:[a-z0-9_-]|\\[0-7]{3})+"
# A name as tcpserver writes it (djbdns' dns_domain_todot: lower case,
# other bytes as \ooo, no trailing dot).
_HOST = re.compile(rb"%s(?:\.%s)*\Z" % (_LABEL, _LABEL))
_CIDR4 = re.compile(rb"([0-9]{1,3}(?:\.[0-9]{1,3}){0,3})/([0-9]{1,2})\Z")
_IPV6_LINE = re.compile(rb"([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:/[0-9]{1,3})?):(?:allow|deny)")

Form = Literal[
    "default", "any-name", "host", "suffix", "ip", "prefix", "ident-ip", "ident-host", "other"
]


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What a key is, and, when no connection can produce it, why (the
    finding's code and message)."""

    form: Form
    code: str | None = None
    why: str | None = None


def _bytes_ok(text: bytes) -> bool:
    return all(int(part) <= 255 for part in text.split(b".") if part)


def _is_ip(key: bytes) -> bool:
    """An address as tcpserver writes it (ip4_fmt: no leading zeros)."""
    return bool(_IP_RE.match(key)) and _bytes_ok(key)


def _is_prefix(key: bytes) -> bool:
    """A prefix of such an address, cut just after a '.'."""
    return bool(_PREFIX_RE.match(key)) and _bytes_ok(key)


def _never(code: str, why: str) -> _Shape:
    return _Shape("other", code, why)


def _cidr_hint(address: bytes, bits: int) -> str:
    """The tcprules way to write an IPv4 network: a prefix, a range of
    prefixes, or a range in the last octet."""
    net = ipaddress.IPv4Network(f"{address.decode()}/{bits}", strict=False)
    octets = str(net.network_address).split(".")
    if bits == 0:
        return "the default rule ':' matches every address"
    whole, rest = divmod(bits, 8)
    if rest == 0:
        text = ".".join(octets[:whole]) + ("." if whole < 4 else "")
        return f"write {_s(text)}"
    low = int(octets[whole])
    high = low + (1 << (8 - rest)) - 1
    head = "".join(o + "." for o in octets[:whole])
    text = f"{head}{low}-{high}" + ("." if whole < 3 else "")
    return f"write the range {_s(text)}"


def _host_problem(name: bytes, whole: bytes, ident: bool) -> _Shape | None:
    """Why ``name`` (a host after ``=`` or ``@=``) is no name tcpserver
    writes, or None when it could be one."""
    if 35 in name:  # '#'
        return _never(
            "inline-comment",
            f"{_q(whole)} never matches: tcprules has no inline comments, so the key is "
            "everything before the ':', comment and blanks included; put the comment on a "
            "line of its own, starting with '#'",
        )
    if 42 in name:  # '*'
        return _never(
            "never-matches",
            f"{_q(whole)} never matches: tcprules has no wildcards (a '*' is just a byte of "
            "the key); '=.example.com' matches every name under example.com",
        )
    body = name[1:] if name[:1] == b"." and not ident else name
    if ident and name[:1] == b".":
        return _never(
            "never-matches",
            f"{_q(whole)} never matches: an ident rule names one whole host name (tcpserver "
            "looks up the ident answer, '@=' and the client's full name), not a suffix",
        )
    if name == b".":
        return None  # the root's name, as tcpserver writes it
    if _HOST.match(body):
        return None
    if _HOST.match(body.lower()):
        fixed = whole[: len(whole) - len(name)] + name.lower()
        return _never(
            "uppercase-host",
            f"{_q(whole)} never matches: tcpserver lower-cases the host names it gets from "
            f"DNS; write {_q(fixed)}",
        )
    if body.endswith(b".") and _HOST.match(body.rstrip(b".").lower()):
        fixed = whole[: len(whole) - len(name)] + name.rstrip(b".")
        return _never(
            "never-matches",
            f"{_q(whole)} never matches: tcpserver writes host names without a trailing "
            f"'.'; write {_q(fixed)}",
        )
    return _never(
        "never-matches",
        f"{_q(whole)} never matches: the host names tcpserver compares hold only lower-case "
        "letters, digits, '-', '_' and dots between labels (any other byte as a \\ooo "
        "escape)",
    )


def _address_problem(key: bytes, whole: bytes, ident: bool) -> _Shape | None:
    """Why ``key`` (compared with the client's address text) is no
    address or prefix tcpserver writes; None when it is one."""
    if _is_ip(key):
        return None
    if not ident and _is_prefix(key):
        return None
    if 58 in key:  # ':': IPv6, for the ucspi-tcp-ipv6 dialect; not judged
        return None
    if 35 in key:  # '#'
        return _never(
            "inline-comment",
            f"{_q(whole)} never matches: tcprules has no inline comments, so the key is "
            "everything before the ':', comment and blanks included; put the comment on a "
            "line of its own, starting with '#'",
        )
    m = _CIDR4.match(key)
    if m and not ident:
        bits = int(m.group(2))
        try:
            hint = _cidr_hint(m.group(1), bits) if bits <= 32 else None
        except ValueError:
            hint = None
        if hint is not None:
            return _never(
                "cidr",
                f"{_q(whole)} never matches: tcprules has no CIDR notation and stores it as "
                f"a key of its own, which no client address equals; {hint}",
            )
    if 42 in key:  # '*'
        return _never(
            "never-matches",
            f"{_q(whole)} never matches: tcprules has no wildcards (a '*' is just a byte of "
            "the key); a prefix such as '10.1.' matches every address that starts with it",
        )
    if key != key.strip(b" \t"):
        return _never(
            "never-matches",
            f"{_q(whole)} never matches: the blanks around the address are part of the key "
            "(tcprules only trims the end of the line)",
        )
    if ident and _is_prefix(key):
        return _never(
            "never-matches",
            f"{_q(whole)} never matches: an ident rule names one whole address (tcpserver "
            "looks up the ident answer, '@' and the client's full address), not a prefix",
        )
    if _DOTTED.match(key):
        parts = key.split(b".")
        if any(len(p) > 1 and p[:1] == b"0" for p in parts):
            fixed = b".".join(p.lstrip(b"0") or b"0" for p in parts)
            why = f"tcpserver writes addresses without leading zeros ({_q(fixed)})"
        elif any(p and int(p) > 255 for p in parts):
            why = "an address byte is at most 255"
        elif b"" not in parts and len(parts) < 4:
            why = (
                "a key without a trailing '.' is compared with the whole address; for every "
                f"address that starts with it, write the prefix {_q(key + b'.')}"
            )
        elif len(parts) == 5 and parts[4] == b"":
            why = f"an address has four parts; write {_q(key[:-1])}"
        else:
            why = "it is neither an address (1.2.3.4) nor a prefix (1.2.3.)"
        return _never("never-matches", f"{_q(whole)} never matches: {why}")
    if not ident and _HOST.match(key.lower()):
        return _never(
            "never-matches",
            f"{_q(whole)} never matches: tcpserver compares a key without '=' or '@' with the "
            f"client's address; a rule for a host name is written {_q(b'=' + key.lower())}",
        )
    return _never(
        "never-matches",
        f"{_q(whole)} never matches: it is neither an address, a prefix such as '10.1.', "
        "'=' and a host name, nor 'user@' and one of those",
    )


def _shape(key: bytes) -> _Shape:
    """The form of ``key`` among those tcpserver looks up (docs/lookup-order.md §1)."""
    if not key:
        return _Shape("default")
    if key.startswith(b"\xef\xbb\xbf"):
        return _never(
            "never-matches",
            f"{_q(key[3:])} never matches: the file starts with a UTF-8 byte order mark (the "
            "bytes EF BB BF), which tcprules keeps as the start of this key; save the file "
            "without it",
        )
    if 64 in key:  # '@': the ident answer (which may hold '@' itself), '@', the rest
        target = key[key.rfind(b"@") + 1 :]
        if target[:1] == b"=":
            bad = _host_problem(target[1:], key, ident=True)
            return bad or _Shape("ident-host")
        bad = _address_problem(target, key, ident=True)
        return bad or _Shape("ident-ip")
    if key[:1] == b"=":
        if key == b"=":
            return _Shape("any-name")
        bad = _host_problem(key[1:], key, ident=False)
        if bad:
            return bad
        return _Shape("suffix" if key[1:2] == b"." else "host")
    bad = _address_problem(key, key, ident=False)
    if bad:
        return bad
    return _Shape("prefix" if key.endswith((b".", b":")) else "ip")


# ---- judging one rule --------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names a mail server's rules commonly set, for "did you mean".
_KNOWN = ("RELAYCLIENT", "RBLSMTPD", "QMAILQUEUE", "DATABYTES", "SMTPAUTH", "TCPREMOTEHOST")


class _OddCase:
    """Well-formed names that are a known name in the wrong case."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.upper() in _KNOWN and name not in _KNOWN


_ODD_CASE = _OddCase()


def _env_problem(name: str) -> str | None:
    if _NAME.match(name) and name not in _ODD_CASE:
        return None  # the usual case, decided without building a message
    shown = _s(name)
    meant = next((k for k in _KNOWN if name.strip(" \t").upper() == k), None)
    if meant is not None and name != meant:
        if name.strip(" \t") != name:
            how = (
                "tcprules takes every byte between the ',' and the '=' as the name, blanks included"
            )
        else:
            how = "environment names are case-sensitive"
        extra = ": qmail-smtpd does not relay for this client" if meant == "RELAYCLIENT" else ""
        return f"this rule sets the variable {shown}, not {meant} ({how}){extra}"
    if not name:
        return "this rule sets a variable with an empty name (',=\"...\"'), which no program reads"
    if not _NAME.match(name):
        return (
            f"this rule sets a variable named {shown}: bytes other than letters, digits and "
            "'_' make a name no shell can read, most likely a typing mistake"
        )
    return None


def _prefix_is_public(key: bytes) -> bool:
    net = ipaddress.IPv4Network(key.decode() + "0.0.0/8")
    return not (net.is_private or net.is_reserved or net.is_multicast or net.is_loopback)


def _text_of(action: str, env: Env) -> str:
    return action + "".join(f',{show(n)}="{show(v)}"' for n, v in env)


def _misread(data: bytes, decision: Decision, written: tuple[Action, Env] | None) -> str | None:
    """Why tcpserver reads ``data`` otherwise than its author meant it,
    or None when the two readings agree.  ``written`` is the rule as its
    line says (rules text); for a cdb it is what :func:`decode` makes of
    the data, the reading tcprules' output allows that is closest to
    tcpserver's."""
    if written is None:
        try:
            written = decode(data)
        except DataError as exc:
            return (
                f"this record's data is not what tcprules writes: {exc}; tcpserver reads it "
                f"as {_s(_reading(decision))}"
            )
    action, env = written
    meant: dict[str, str] = {}
    for name, value in env:
        text = name.decode(*_ENC)
        meant.pop(text, None)
        meant[text] = value.decode(*_ENC)
    if (action == "allow") == decision.allowed and meant == decision.env:
        return None
    return (
        f"tcpserver reads this rule as {_s(_reading(decision))}, not as written "
        f"({_s(_text_of(action, env))}): a NUL byte ends a value, and tcpserver reads the "
        "bytes after it as an item of their own (one starting with 'D' denies)"
    )


def _judge(
    key: bytes, data: bytes, paranoid: bool, written: tuple[Action, Env] | None = None
) -> list[tuple[Severity, str, str]]:
    """(severity, code, message) of everything worth saying about the
    record (``key``, ``data``) that tcpserver would use."""
    shape = _shape(key)
    if shape.code is not None:
        # No connection reaches the key: what its data says never happens.
        return [("warning", shape.code, shape.why or "")]
    about = _about_data if len(data) <= 512 else _about_data.__wrapped__  # keep no big data
    relay, before, after = about(data, written)
    if not relay:
        return list(before)
    return [*before, *_relay(key, shape.form, paranoid), *after]


_Said = tuple[tuple[Severity, str, str], ...]


@functools.lru_cache(maxsize=1024)
def _about_data(data: bytes, written: tuple[Action, Env] | None) -> tuple[bool, _Said, _Said]:
    """(whether the record grants RELAYCLIENT, the findings about its
    data that go before those about the grant, those that go after): a
    misreading and odd names, then a non-empty RELAYCLIENT.  Cached:
    real files repeat the same few data over many keys."""
    out: list[tuple[Severity, str, str]] = []
    decision = Decision(None, data)
    misread = _misread(data, decision, written)
    if misread:
        out.append(("warning", "misread-data", misread))
    if not decision.allowed:
        # tcpserver closes the connection: the environment does nothing.
        return False, tuple(out), ()
    env = decision.env
    for name in env:
        problem = _env_problem(name)
        if problem:
            out.append(("warning", "env-name", problem))
    if "RELAYCLIENT" not in env:
        return False, tuple(out), ()
    value = env["RELAYCLIENT"]
    if not value:
        return True, tuple(out), ()
    return (
        True,
        tuple(out),
        (
            (
                "warning",
                "relayclient-value",
                f"RELAYCLIENT is set to {_s(value)}, not empty: qmail-smtpd appends its value "
                f"to every recipient address ('user@example.com' becomes "
                f'{_s("user@example.com" + value)}); write RELAYCLIENT="" unless that is '
                "what you want",
            ),
        ),
    )


def _relay(key: bytes, form: Form, paranoid: bool) -> list[tuple[Severity, str, str]]:
    """The findings for a reachable key whose record allows and sets
    RELAYCLIENT: how far the grant reaches."""
    if form == "default":
        return [
            (
                "error",
                "open-relay",
                "the default rule (the empty key, used for every client no other rule "
                "matches) grants RELAYCLIENT: qmail-smtpd relays mail for anyone on the "
                "Internet (an open relay); give the default no RELAYCLIENT and grant it by "
                "address",
            )
        ]
    if form == "any-name":
        return [
            (
                "error",
                "open-relay",
                "the rule '=' matches every client whose address has a PTR record (any host "
                "name at all) and grants RELAYCLIENT: anyone who sets up reverse DNS for an "
                "address they use can relay, an open relay (tcpserver -p does not help: "
                "their name resolves back to them); grant RELAYCLIENT by address",
            )
        ]
    if form in ("host", "suffix", "ident-host"):
        target = key[key.rfind(b"@") + 1 :] if form == "ident-host" else key
        name = target[1:]
        if form == "suffix" and len(name) > 1 and b"." not in name[1:]:
            return [
                (
                    "error",
                    "open-relay",
                    f"{_q(key)} grants RELAYCLIENT to every client whose host name ends in "
                    f"{_q(name)}: anyone can register a name there and point their reverse "
                    "DNS at it, an open relay (tcpserver -p does not help: their name "
                    "resolves back to them); grant RELAYCLIENT by address",
                )
            ]
        under = form == "suffix" and len(name) > 1
        who = f"a name under {_q(name[1:])}" if under else f"to be {_q(name)}"
        ident = ""
        if form == "ident-host":
            user = key[: key.rfind(b"@")]
            ident = (
                f" (the ident answer {_q(user)} adds nothing: it comes from the client's own host)"
            )
        if paranoid:
            return [
                (
                    "info",
                    "relay-by-name",
                    f"{_q(key)} grants RELAYCLIENT by host name{ident}: safe only while "
                    "tcpserver runs with -p, which uses a name only when it resolves back to "
                    "the client's address",
                )
            ]
        return [
            (
                "error",
                "relay-by-name",
                f"{_q(key)} grants RELAYCLIENT by host name{ident}: tcpserver takes the name "
                "from the client's PTR record, which whoever controls the reverse DNS of the "
                f"client's address can set to anything, so anyone can claim {who} and relay, "
                "unless tcpserver runs with -p (it then uses a name only when the name "
                "resolves back to the client's address); run tcpserver with -p (and lint "
                "with --paranoid), or grant RELAYCLIENT by address",
            )
        ]
    if form == "ident-ip":
        at = key.rfind(b"@")
        return [
            (
                "warning",
                "ident-relay",
                f"{_q(key)} grants RELAYCLIENT on the ident (RFC 1413) answer "
                f"{_q(key[:at])} from {_q(key[at + 1 :])}: that answer comes from the "
                "client's own host, whose administrator (and, with some ident servers, any "
                "user) chooses it, so this is a grant to whoever can connect from that "
                "address",
            )
        ]
    if form == "prefix" and key.count(b".") == 1 and 58 not in key and _prefix_is_public(key):
        return [
            (
                "warning",
                "broad-relay",
                f"{_q(key)} grants RELAYCLIENT to a whole public /8 network, "
                f"{key.decode()}0.0.0/8: 16777216 addresses, most of them not yours",
            )
        ]
    return []


# ---- cdb files -----------------------------------------------------------------


def detect_bytes(data: Any, name: str = "<bytes>") -> Kind:
    """``"cdb"`` when ``data`` (bytes or an mmap) starts with a sound cdb
    header, or when ``name`` ends in ``.cdb``; ``"text"`` otherwise (see
    the module docstring)."""
    if len(data) >= 2048:
        try:
            parse_header(data, name)
        except CorruptError:
            pass
        else:
            return "cdb"
    return "cdb" if name.endswith(".cdb") else "text"


def detect(path: str | os.PathLike[str]) -> Kind:
    """Whether the file at ``path`` is a cdb or rules text (see
    :func:`detect_bytes`); OSError when it cannot be read."""
    name = os.fsdecode(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size >= 2048:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return detect_bytes(buf, name)
    return "cdb" if name.endswith(".cdb") else "text"


def _corrupt(report: Report, exc: CorruptError) -> Report:
    detail = str(exc)
    prefix = f"{report.name}: "
    if detail.startswith(prefix):
        detail = detail[len(prefix) :]
    report.findings.append(
        Finding(
            "error",
            "corrupt",
            f"tcpserver cannot read this database ({detail}): it drops every connection "
            "whose lookup meets the damage, and lint stops here; 'pycdb validate' lists "
            "the damage",
        )
    )
    return report


def lint_cdb(
    source: str | os.PathLike[str] | bytes, *, name: str | None = None, paranoid: bool = False
) -> Report:
    """Lint a rules cdb: a path, or the file's bytes.  OSError when the
    file cannot be read; a corrupt file is a ``corrupt`` finding.
    ``paranoid`` says tcpserver runs with ``-p`` (host-name grants of
    RELAYCLIENT are then infos, not errors)."""
    if isinstance(source, bytes):
        report = Report(name or "<bytes>", "cdb")
        try:
            reader = Reader.from_bytes(source, report.name)
        except CorruptError as exc:
            return _corrupt(report, exc)
    else:
        report = Report(name or os.fsdecode(source), "cdb")
        try:
            reader = Reader(source)
        except CorruptError as exc:
            return _corrupt(report, exc)
    with reader:
        counts: dict[bytes, int] = {}
        try:
            for key in reader:
                counts[key] = counts.get(key, 0) + 1
        except CorruptError as exc:
            return _corrupt(report, exc)
        report.records = sum(counts.values())
        report.rules = len(counts)
        add = report.findings.append
        missing = object()
        for key, count in counts.items():
            try:
                data = reader.get(key, missing)
                every = reader.get_all(key) if count > 1 else []
            except CorruptError as exc:
                report.findings.clear()
                return _corrupt(report, exc)
            if data is missing:
                add(
                    Finding(
                        "warning",
                        "unreachable",
                        "tcpserver never finds this key: the hash tables do not lead to its "
                        "record (the file is damaged; 'pycdb validate' says where)",
                        key=key,
                    )
                )
                continue
            assert isinstance(data, bytes)
            for severity, code, message in _judge(key, data, paranoid):
                add(Finding(severity, code, message, key=key))
            if count > 1:
                others = [_s(_written(d)) for d in every[1:3]]
                more = ", ..." if count > 3 else ""
                add(
                    Finding(
                        "warning",
                        "duplicate-key",
                        f"{count} records have this key: tcpserver uses only the first "
                        f"({_s(_written(data))}) and never the other"
                        f"{'s' if count > 2 else ''} ({', '.join(others)}{more})",
                        key=key,
                    )
                )
    _whole_file(report, b"" in counts, "the database has no records")
    return report


def _whole_file(report: Report, has_default: bool, empty: str) -> None:
    if not report.records and not report.rules:
        report.findings.append(
            Finding(
                "warning",
                "empty",
                f"{empty}: tcpserver allows every connection, with no environment (as the "
                "single rule ':allow' would); write that rule to say it deliberately",
            )
        )
    elif not has_default:
        report.findings.append(
            Finding(
                "warning",
                "no-default",
                "there is no default rule (the empty key, a line ':allow' or ':deny'): "
                "tcpserver allows every client no rule matches, with no environment; add "
                "':allow' to say so deliberately, or ':deny' to refuse them",
            )
        )


# ---- rules text ----------------------------------------------------------------


def _try(line: bytes, lineno: int) -> Rule | None:
    try:
        return parse_line(line, lineno)
    except RulesSyntaxError:
        return None


class _TextLinter:
    """One pass over rules text, line by line."""

    def __init__(self, name: str, paranoid: bool, keep: bool) -> None:
        self.report = Report(name, "text")
        self.paranoid = paranoid
        self.keep = keep  # keep the records, to compare them with a cdb
        self.first: dict[bytes, tuple[int, bytes]] = {}  # key -> (line, data)
        self.written = 0  # records tcprules would write
        self.records: list[tuple[bytes, bytes, int]] = []  # and which (when kept)
        self.refused: list[int] = []
        self.crlf: list[int] = []
        self.crlf_at = 0
        self.has_default = False

    def add(
        self, severity: Severity, code: str, message: str, line: int, key: bytes | None = None
    ) -> None:
        self.report.findings.append(Finding(severity, code, message, line, key))

    def line(self, raw: bytes, lineno: int) -> None:
        try:
            rule = parse_line(raw, lineno, self.report.name)
        except RulesSyntaxError as exc:
            self.refused.append(lineno)
            repaired = self.repair(raw, lineno, exc)
            if repaired is not None:
                self.rule(repaired, written=False)
            return
        if rule is None:
            self.skipped(raw, lineno)
        else:
            self.rule(rule, written=True)

    def skipped(self, raw: bytes, lineno: int) -> None:
        if not raw or raw[:1] == b"#":
            return
        text = raw.rstrip(b" \t\n")
        if lineno == 1 and text.startswith(b"\xef\xbb\xbf"):
            text = text[3:]  # a byte order mark (see _shape)
        if not text.strip(b" \t\r") or text.lstrip(b" \t")[:1] == b"#":
            return  # blank, or an indented comment: skipped, as meant
        self.add(
            "warning",
            "no-colon",
            "tcprules skips this line silently: it has no ':', so it is no rule (a rule is "
            "ADDRESS:allow or ADDRESS:deny)",
            lineno,
        )

    def repair(self, raw: bytes, lineno: int, exc: RulesSyntaxError) -> Rule | None:
        """Report a refused line; return the rule it becomes once its
        carriage return or trailing comment is removed, if one does."""
        text = raw.rstrip(b" \t\n")
        m = _IPV6_LINE.match(text)
        if m and _is_ipv6(m.group(1)):
            address = m.group(1)
            what = "network" if b"/" in address else "address"
            dialect = (
                "ucspi-tcp-ipv6's tcprules reads IPv6 prefixes cut at a ':', but has no CIDR either"
                if what == "network"
                else "ucspi-tcp-ipv6's tcprules reads it"
            )
            self.add(
                "error",
                "ipv6",
                f"{_REFUSED}{_q(address)} is an IPv6 {what}, but tcprules 0.88 has no IPv6 "
                "syntax: the address ends at the first ':', so it reads the address "
                f"{_q(text[: text.find(b':')])} and then {_q(text[text.find(b':') + 1 :])} "
                f"where 'allow' or 'deny' must be ({dialect})",
                lineno,
            )
            return None
        if text.lstrip(b" \t")[:1] == b"#":
            self.add(
                "error",
                "indented-comment",
                f"{_REFUSED}a comment starts with '#' in the first column; this one starts "
                "with blanks, so tcprules reads it as a rule (whose address is everything "
                "before the first ':')",
                lineno,
            )
            return None
        bases = [(text, False)]
        if text.endswith(b"\r"):
            bases.insert(0, (text[:-1], True))
        for base, cr in bases:
            rule = _try(base, lineno)
            cut = None
            if rule is None:
                colon = base.find(b":")
                for pos in range(colon + 1, len(base)):
                    if base[pos] == 35:  # '#'
                        rule = _try(base[:pos], lineno)
                        if rule is not None:
                            cut = pos
                            break
            if rule is None:
                continue
            if cr:
                if not self.crlf:  # one finding for them all (see finish)
                    self.crlf_at = len(self.report.findings)
                    self.add("error", "crlf", _REFUSED + CRLF, lineno)
                self.crlf.append(lineno)
            if cut is not None:
                comment = base[cut:]
                self.add(
                    "error",
                    "inline-comment",
                    f"{_REFUSED}tcprules has no inline comments, and {_q(comment)} follows "
                    "the rule; put the comment on a line of its own, starting with '#'",
                    lineno,
                )
            return rule
        self.add("error", "syntax", _REFUSED + exc.reason, lineno)
        return None

    def rule(self, rule: Rule, written: bool) -> None:
        self.report.rules += 1
        lineno = rule.lineno
        if written:
            self.written += len(rule.keys)
            if self.keep:
                self.records += [(key, rule.data, lineno) for key in rule.keys]
        if not rule.keys:
            self.empty_range(rule)
            return
        if len(rule.keys) > 1:
            bounds = range_bounds(rule.address)
            if bounds is not None and bounds[1] > 255:
                self.add(
                    "warning",
                    "range-clipped",
                    f"the range {_q(rule.address)} stops at 255: tcprules cuts a high bound "
                    f"above 255 ({bounds[1]}) to 255",
                    lineno,
                )
        fresh: list[bytes] = []
        earlier: dict[int, list[bytes]] = {}
        for key in rule.keys:
            seen = self.first.get(key)
            if seen is None:
                self.first[key] = (lineno, rule.data)
                fresh.append(key)
            else:
                earlier.setdefault(seen[0], []).append(key)
        for before, keys in earlier.items():
            self.duplicate(rule, before, keys, all_old=not fresh)
        if b"" in fresh:
            self.has_default = True
        # Judge each key that decides something; a range's keys share
        # their findings, reported once for the line.
        seen_codes: dict[tuple[str, str], int] = {}
        for key in fresh:
            for severity, code, message in _judge(
                key, rule.data, self.paranoid, (rule.action, rule.env)
            ):
                group = (code, message if len(fresh) == 1 else code)
                if group in seen_codes:
                    seen_codes[group] += 1
                    continue
                seen_codes[group] = 1
                self.add(severity, code, message, lineno, key)
        if len(fresh) > 1:
            self.tally(lineno, seen_codes)

    def tally(self, lineno: int, counts: dict[tuple[str, str], int]) -> None:
        """Add "(and N more keys of this range)" to grouped findings."""
        findings = self.report.findings
        for i, f in enumerate(findings):
            if f.line != lineno:
                continue
            extra = counts.get((f.code, f.code), 1) - 1
            if extra > 0:
                findings[i] = dataclasses.replace(
                    f,
                    message=f"{f.message} (and {extra} more key"
                    f"{'s' if extra > 1 else ''} of this range)",
                )

    def duplicate(self, rule: Rule, before: int, keys: list[bytes], all_old: bool) -> None:
        old = self.first[keys[0]][1]
        if old == rule.data:
            same = "with the same rule, so this line only repeats it"
        else:
            same = f"line {before} says {_s(_written(old))}, this line {_s(_written(rule.data))}"
        if len(rule.keys) == 1:
            message = (
                f"{_q(keys[0])} is already a key on line {before}, and tcpserver uses only "
                f"the first record of a key: this line is never used ({same})"
            )
        else:
            shown = ", ".join(_q(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
            unused = "; this line is never used" if all_old else ""
            n = len(rule.keys)
            if len(keys) == 1:
                are = f"{_q(keys[0])}, one of this line's {n} keys, is already a key"
            else:
                are = f"{len(keys)} of this line's {n} keys ({shown}) are already keys"
            message = (
                f"{are} on line {before}, whose rule tcpserver uses for "
                f"{'it' if len(keys) == 1 else 'them'}{unused} ({same})"
            )
        self.add("warning", "duplicate-key", message, rule.lineno, keys[0])

    def empty_range(self, rule: Rule) -> None:
        bounds = range_bounds(rule.address)
        assert bounds is not None  # only a range adds no key
        low, high = bounds
        if low <= high:
            why = f"its low bound {low} is above 255, where tcprules cuts the high bound {high}"
        else:
            why = f"its low bound {low} is above its high bound {high}"
        self.add(
            "warning",
            "range-empty",
            f"the range {_q(rule.address)} adds no rule: {why} (tcprules silently adds nothing)",
            rule.lineno,
        )

    def finish(self) -> None:
        if self.crlf:
            rest = self.crlf[1:]
            if rest:
                listed = ", ".join(map(str, rest[:5])) + (", ..." if len(rest) > 5 else "")
                more = (
                    f"; the same goes for line{'s' if len(rest) > 1 else ''} {listed} (lint "
                    "judges these lines as if converted)"
                )
            else:
                more = " (lint judges the line as if converted)"
            f = self.report.findings[self.crlf_at]
            self.report.findings[self.crlf_at] = dataclasses.replace(f, message=f.message + more)
        self.report.findings.sort(key=lambda f: f.line or 0)
        self.report.records = self.written
        _whole_file(self.report, self.has_default, "there are no rules")


def _is_ipv6(address: bytes) -> bool:
    try:
        net = ipaddress.ip_network(address.decode("ascii"), strict=False)
    except ValueError:
        return False
    return net.version == 6


def lint_text(
    source: Source,
    *,
    filename: str | None = None,
    cdb: str | os.PathLike[str] | None = None,
    paranoid: bool = False,
) -> Report:
    """Lint rules text: a path, the text as bytes, a binary file object
    or an iterable of lines (as :func:`pycdb.rules.parse` takes them).
    ``cdb`` names the database that should have been compiled from it:
    it is ``stale`` when compiling the text (into a temporary file, never
    touching ``cdb``) does not give its bytes.  ``paranoid`` says
    tcpserver runs with ``-p`` (see :func:`lint_cdb`).  OSError when a
    file cannot be read.  The text is held in memory while it is judged."""
    name, chunks = source_chunks(source, filename)
    text = b"".join(chunks)
    linter = _TextLinter(name, paranoid, keep=cdb is not None)
    for lineno, raw in enumerate(lines([text]), 1):
        linter.line(raw, lineno)
    linter.finish()
    report = linter.report
    if cdb is not None:
        path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        stale = _stale(name, text, path, cdb, linter)
        if stale is not None:
            report.findings.append(stale)
    return report


def _when(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _stale(
    name: str,
    text: bytes,
    path: str | None,
    cdb: str | os.PathLike[str],
    linter: _TextLinter,
) -> Finding | None:
    """The ``stale`` (or ``newer-text``) finding for ``cdb``, if any."""
    db_name = os.fsdecode(cdb)
    with open(cdb, "rb") as f:
        db_bytes = f.read()
        db_mtime = os.fstat(f.fileno()).st_mtime_ns
    newer = ""
    if path is not None:
        text_mtime = os.stat(path).st_mtime_ns
        if text_mtime > db_mtime:
            newer = (
                f"{name} was modified after it ({_when(text_mtime)}; the database "
                f"{_when(db_mtime)})"
            )
    rebuild = f"; rebuild it: tcprules {db_name} {db_name}.tmp < {name}"
    if linter.refused:
        return Finding(
            "error",
            "stale",
            f"{db_name} was not compiled from this text: tcprules refuses it (line "
            f"{linter.refused[0]})" + (f", and {newer}" if newer else ""),
        )
    try:
        built = _compiled(text)
    except TooLargeError as exc:
        return Finding("error", "stale", f"{db_name} cannot be compared with the text: {exc}")
    if built == db_bytes:
        if newer:
            return Finding(
                "info",
                "newer-text",
                f"{newer}, but compiles to the same bytes: {db_name} is up to date",
            )
        return None
    where = _first_difference(db_name, db_bytes, linter.records)
    because = f", and {newer}" if newer else ""
    return Finding(
        "error",
        "stale",
        f"{db_name} is not what tcprules makes of this text{because}: {where}{rebuild}",
    )


def _compiled(text: bytes) -> bytes:
    """The bytes tcprules writes for ``text`` (compiled in a private
    temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="pycdb-lint-") as tmp:
        out = os.path.join(tmp, "rules.cdb")
        compile_rules(text, out)
        with open(out, "rb") as f:
            return f.read()


def _first_difference(
    db_name: str, db_bytes: bytes, records: list[tuple[bytes, bytes, int]]
) -> str:
    try:
        with Reader.from_bytes(db_bytes, db_name) as reader:
            stored = list(reader.items())
    except CorruptError as exc:
        return f"it is not a readable cdb ({exc})"
    for i, ((key, data), (tkey, tdata, line)) in enumerate(zip(stored, records)):
        if (key, data) != (tkey, tdata):
            return (
                f"the first difference is record {i + 1}: the database has "
                f"{_record(key, data)} where line {line} gives {_record(tkey, tdata)}"
            )
    if len(stored) > len(records):
        key, data = stored[len(records)]
        return (
            f"the database has {len(stored)} records, the text gives {len(records)}: record "
            f"{len(records) + 1}, {_record(key, data)}, is not in the text"
        )
    if len(stored) < len(records):
        key, data, line = records[len(stored)]
        return (
            f"the text gives {len(records)} records, the database has {len(stored)}: line "
            f"{line}'s {_record(key, data)} is missing from it"
        )
    return "the records are the same, but the hash tables differ (tcprules did not write it)"


# ---- either --------------------------------------------------------------------


def lint(
    path: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    cdb: str | os.PathLike[str] | None = None,
    paranoid: bool = False,
) -> Report:
    """Lint the file at ``path``: a rules cdb or rules text, as ``kind``
    says or, by default, as :func:`detect` tells.  ``cdb`` (text only)
    names the database compiled from it, to check it is not stale."""
    if kind is None:
        kind = detect(path)
    if kind == "cdb":
        if cdb is not None:
            raise ValueError("cdb= compares rules text with its database; this file is a cdb")
        return lint_cdb(path, paranoid=paranoid)
    return lint_text(path, cdb=cdb, paranoid=paranoid)
