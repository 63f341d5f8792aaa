"""Why a rules database decides a connection as it does: every key
tcpserver tries, in its order, which one decided and with what record,
and, given the rules text, the line that wrote that record.  This is the
``postmap -q`` / ``exim -bh`` that qmail administrators lack
(``pycdb check --explain``).

The keys come from a function, :func:`pycdb._keyorder.rules_keys` (the
classic order, docs/lookup-order.md §1) unless another is given, so a
dialect with its own key order explains the same way.  Each key is
looked up as tcpserver looks it up (the first record of the key decides,
docs/format.md §7), through :class:`pycdb.Reader`, and the deciding
record is read as tcpserver's ``found()`` reads it (:class:`Decision`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

from .._text import quote, show
from ..reader import Reader
from .dialects import get as get_dialect
from .language import Source, parse_line, source_chunks
from .lint.wording import reading
from .reading import lines
from .ruleset import DEFAULT, Decision

__all__ = ["SHOWN", "Explanation", "KeyOrder", "RulesLine", "Step", "explain"]

#: ``keys(ip, host, info) -> the keys tried, first to last`` (None: not known).
KeyOrder = Callable[[bytes, Optional[bytes], Optional[bytes]], Iterable[bytes]]

#: The longest key an explanation builds and lists, in bytes, unless the
#: database holds a longer one: tcpserver also tries every longer
#: suffix of a long host name, but none can have a record, and listing
#: them all would take memory quadratic in the name's length.
SHOWN = 1024

#: Where a key stands in the walk: looked up without a record, the one
#: that decided, or after it (tcpserver never asks).
State = Literal["no record", "decides", "not reached"]

_ENCODING = ("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Step:
    """One key of the walk: ``key``; ``form``, which part of the
    connection made it (``info@ip``, ``info@=host``, ``ip``, ``=host``,
    ``ip prefix``, ``=.suffix``, ``=``, ``default``, or ``again`` for a
    key tcpserver asks for a second time); ``record``, the key's first
    record's data, None when it has none; ``state``."""

    key: bytes
    form: str
    record: bytes | None
    state: State


@dataclass(frozen=True)
class RulesLine:
    """The line of rules text that wrote the deciding record: ``filename``,
    ``lineno`` (from 1), ``text`` (the line without its newline), and
    whether the data it compiles to is the database's (``matches``;
    False means the database is stale or was made from other text)."""

    filename: str
    lineno: int
    text: bytes
    matches: bool


@dataclass(frozen=True)
class Explanation:
    """The walk for one connection (``ip``, ``host``, ``info`` as bytes,
    None when not known), its ``steps`` in tcpserver's order, the
    ``decision``, and, when rules text was given (``rules_file``), the
    ``line`` that wrote the deciding record (None when no line does, or
    when no key decided).  ``left_out`` is the length in bytes above
    which keys were neither built nor listed (none of them has a record:
    the database's longest key is shorter), None when every key is
    listed."""

    ip: bytes
    host: bytes | None
    info: bytes | None
    steps: tuple[Step, ...]
    decision: Decision
    rules_file: str | None
    line: RulesLine | None
    left_out: int | None = None

    @property
    def why(self) -> str:
        """One sentence: which key decided and why, or why none did."""
        key = self.decision.key
        if key is None:
            return (
                "no key tcpserver tries has a record: tcpserver allows the connection and "
                "sets no variables"
            )
        which = "the empty key (the default rule)" if key == b"" else quote(key)
        return (
            f"{which} is the first key in tcpserver's order with a record; its first record "
            f"says {reading(self.decision)}"
        )

    def text(self) -> str:
        """The explanation for people, one line each: the connection, the
        keys (number, key, form, what happened), the decision and why,
        and the rules line."""
        out = [
            _shown("TCPREMOTEIP", self.ip),
            _shown("TCPREMOTEHOST", self.host),
            _shown("TCPREMOTEINFO", self.info),
        ]
        if self.host is None:
            out.append("no '=host' keys are tried: TCPREMOTEHOST is unset")
        if self.info is None:
            out.append("no 'info@' keys are tried: TCPREMOTEINFO is unset")
        out.append("keys in tcpserver's order (the first with a record decides):")
        shown = [quote(step.key) for step in self.steps]
        width = max(map(len, shown), default=0)
        form_width = max((len(step.form) for step in self.steps), default=0)
        for n, (step, key) in enumerate(zip(self.steps, shown), 1):
            if step.state == "decides":
                what = f"DECIDES: {reading(self.decision)}"
            elif step.state == "no record":
                what = "no record"
            elif step.record is None:
                what = "not reached"
            else:
                what = f"not reached (has a record: {reading(Decision(step.key, step.record))})"
            out.append(f"{n:4}  {key:<{width}}  {step.form:<{form_width}}  {what}")
        if self.left_out is not None:
            out.append(
                f"      (keys longer than {self.left_out} bytes are left out: tcpserver tries "
                "them too, but the database holds no key that long)"
            )
        out.append(f"decision: {self.why}")
        if self.rules_file is not None and self.decision.key is not None:
            line = self.line
            if line is None:
                out.append(
                    f"rules line: none of {self.rules_file} writes {quote(self.decision.key)}: "
                    "the database was not compiled from it"
                )
            else:
                out.append(f"rules line: {line.filename}:{line.lineno}: {show(line.text)}")
                if not line.matches:
                    out.append(
                        "  but the database's record differs from what this line compiles to: "
                        "the database is stale (compile the text again with pycdb make)"
                    )
        return "\n".join(out) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``keys`` (each ``key`` as text, UTF-8 with
        surrogateescape, ``form``, ``state``, ``record``: whether the key
        has one), ``why``, and ``line`` (``file``, ``lineno``, ``text``,
        ``matches``; null when no rules text was given or no line
        applies), ``left_out`` (see the class)."""
        line = self.line
        return {
            "keys": [
                {
                    "key": step.key.decode(*_ENCODING),
                    "form": step.form,
                    "state": step.state,
                    "record": step.record is not None,
                }
                for step in self.steps
            ],
            "why": self.why,
            "left_out": self.left_out,
            "line": None
            if line is None
            else {
                "file": line.filename,
                "lineno": line.lineno,
                "text": line.text.decode(*_ENCODING),
                "matches": line.matches,
            },
        }


def _shown(name: str, value: bytes | None) -> str:
    return f"{name} unset" if value is None else f"{name}={show(value)}"


def _form(key: bytes, ip: bytes, host: bytes | None, info: bytes | None) -> str:
    """Which part of the connection made ``key`` (docs/lookup-order.md §1)."""
    if info is not None:
        if key == info + b"@" + ip:
            return "info@ip"
        if host is not None and key == info + b"@=" + host:
            return "info@=host"
    if key == ip:
        return "ip"
    if host is not None and key == b"=" + host:
        return "=host"
    if key == b"":
        return "default"
    if key == b"=":
        return "="
    if host is not None and key[:1] == b"=" and host.endswith(key[1:]):
        return "=.suffix"
    if ip.startswith(key):
        return "ip prefix"
    return "key"


def _line_of(
    source: Source, filename: str | None, key: bytes, data: bytes, dialect: str | None
) -> RulesLine | None:
    """The first line of the rules text that writes ``key`` (tcprules
    writes records in line order, and a lookup finds the first record of
    a key), read as ``dialect``'s tcprules reads it; RulesSyntaxError when
    a line before it is one tcprules refuses."""
    name, chunks = source_chunks(source, filename)
    for lineno, raw in enumerate(lines(chunks), 1):
        rule = parse_line(raw, lineno, name, dialect=dialect)
        if rule is not None and key in rule.keys:
            return RulesLine(name, lineno, raw.rstrip(b"\n"), rule.data == data)
    return None


def explain(
    path: str | os.PathLike[str] | bytes,
    ip: bytes,
    host: bytes | None = None,
    info: bytes | None = None,
    *,
    rules: Source | None = None,
    rules_name: str | None = None,
    keys: KeyOrder | None = None,
    dialect: str | None = None,
) -> Explanation:
    """Explain how the rules cdb at ``path`` decides a connection from
    ``ip`` (its text, TCPREMOTEIP) with ``host`` (TCPREMOTEHOST) and
    ``info`` (TCPREMOTEINFO), None when unset: each key of ``keys(ip,
    host, info)`` (tcpserver's order by default) looked up until one has
    a record, and the keys after it marked as never reached.  ``rules``
    is the rules text (a path, bytes, a file object or lines, as
    :func:`pycdb.rules.parse` takes them; ``rules_name`` names it) in
    which to find the line that wrote the deciding record.

    Raises OSError when a file cannot be read, :class:`pycdb.CorruptError`
    for a damaged database, :class:`pycdb.RulesSyntaxError` for a line
    tcprules refuses before the one sought.  ``dialect``
    (:mod:`pycdb.rules.dialects`, ucspi-tcp 0.88 by default) gives the
    key order and the rules language; ``keys`` replaces its key order.
    With the dialect's order, keys longer than both :data:`SHOWN` and the
    database's longest key are neither built nor listed
    (``Explanation.left_out``), so a huge host name costs linear work."""
    steps: list[Step] = []
    seen: set[bytes] = set()
    decision = DEFAULT
    left_out = None
    with Reader(path) as reader:
        if keys is None:
            order = get_dialect(dialect).lookup_keys
            bound = max(SHOWN, reader.longest_klen)
            # The longest key of any order is one of these four; every
            # prefix and suffix is shorter.
            hostlen = -1 if host is None else len(host)
            whole = [len(ip), hostlen + 1]
            if info is not None:
                whole += [len(info) + 1 + len(ip), len(info) + 2 + hostlen]
            if max(whole) > bound:
                left_out = bound
            tried: Iterable[bytes] = order(ip, host, info, bound)
        else:
            tried = keys(ip, host, info)
        for key in tried:
            form = "again" if key in seen else _form(key, ip, host, info)
            seen.add(key)
            record = reader.get(key)
            if decision is not DEFAULT:
                steps.append(Step(key, form, record, "not reached"))
            elif record is None:
                steps.append(Step(key, form, None, "no record"))
            else:
                decision = Decision(key, record)
                steps.append(Step(key, form, record, "decides"))
    line = None
    rules_file = None
    if rules is not None:
        rules_file = rules_name or (
            os.fsdecode(rules) if isinstance(rules, (str, os.PathLike)) else "<rules>"
        )
        if decision.key is not None:
            line = _line_of(rules, rules_file, decision.key, decision.data, dialect)
    return Explanation(ip, host, info, tuple(steps), decision, rules_file, line, left_out)
