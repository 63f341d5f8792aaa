"""Judging what tcpserver does with one record, and with the file as a
whole: the judgement lint makes of rules text and of a cdb alike.

A record is read the way tcpserver's ``found()`` reads the data of the
record a lookup returns (docs/lookup-order.md §4), through
:class:`pycdb.rules.Decision`: an item starting with ``D`` anywhere
denies, and a later ``+NAME=`` replaces an earlier one.  A key no
connection reaches (:mod:`.keys`) gets one warning and nothing else,
since what its data says never happens; a reachable key whose record
allows and sets RELAYCLIENT goes to the relay judge (:mod:`.relay`).
"""

from __future__ import annotations

import functools
import re

from ...errors import DataError
from ...findings import Finding
from ..data import Action, Env, decode
from ..ruleset import Decision
from .keys import Dead, shape
from .relay import relay
from .report import LintReport, Said
from .runscript import never_fires
from .wording import ENCODING, quote_text, reading, rule_text

__all__ = ["judge", "judge_file"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names a mail server's rules commonly set, for "did you mean".
#: An RBLSMTPD text that starts with an SMTP reply code of its own.
_RBLSMTPD_CODE = re.compile(r"-?[2-5][0-9][0-9](?:[ -]|\Z)")

_KNOWN = ("RELAYCLIENT", "RBLSMTPD", "QMAILQUEUE", "DATABYTES", "SMTPAUTH", "TCPREMOTEHOST")


def judge(
    key: bytes,
    data: bytes,
    paranoid: bool,
    written: tuple[Action, Env] | None = None,
    dialect: str = "ucspi-tcp",
    *,
    no_dns: bool = False,
    no_ident: bool = False,
) -> list[Said]:
    """Everything worth saying about the record (``key``, ``data``) that
    ``dialect``'s tcpserver would use.  ``paranoid``: tcpserver runs with
    ``-p``.  ``written`` is the rule as its line says (rules text); None
    for a cdb record (see :func:`_misread`).  ``no_dns``, ``no_ident``:
    tcpserver runs with ``-H``, ``-R`` (:mod:`.runscript`)."""
    form = shape(key, dialect)
    if isinstance(form, Dead):
        # No connection reaches the key: what its data says never happens.
        return [("warning", form.code, form.why)]
    unreached = never_fires(key, form, no_dns, no_ident)
    if unreached is not None:
        return [unreached]
    about = _about_data if len(data) <= 512 else _about_data.__wrapped__  # keep no big data
    grants, before, after = about(data, written)
    if not grants:
        return list(before)
    return [*before, *relay(key, form, paranoid), *after]


@functools.lru_cache(maxsize=1024)
def _about_data(
    data: bytes, written: tuple[Action, Env] | None
) -> tuple[bool, tuple[Said, ...], tuple[Said, ...]]:
    """(whether the record grants RELAYCLIENT, the findings about its
    data that go before those about the grant, those that go after): a
    misreading and odd names, then a non-empty RELAYCLIENT.  Cached:
    real files repeat the same few data over many keys."""
    out: list[Said] = []
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
    code = _RBLSMTPD_CODE.match(env.get("RBLSMTPD", ""))
    if code:
        value = env["RBLSMTPD"]
        dash = value.startswith("-")
        ours, kind = (
            ("553", "a permanent refusal, for the")
            if dash
            else ("451", "a temporary refusal, for no")
        )
        text = value[1:] if dash else value
        out.append(
            (
                "warning",
                "rblsmtpd-code",
                f"RBLSMTPD is {quote_text(value)}: rblsmtpd puts its own code in front of the "
                f"text ({ours}: {kind} '-' in front), so clients see "
                f"{quote_text(ours + ' ' + text)}; write the text alone, as in "
                f"{quote_text(value[: len(value) - len(text)] + text[4:])}",
            )
        )
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
                f"RELAYCLIENT is set to {quote_text(value)}, not empty: qmail-smtpd appends "
                "its value to every recipient address ('user@example.com' becomes "
                f'{quote_text("user@example.com" + value)}); write RELAYCLIENT="" unless '
                "that is what you want",
            ),
        ),
    )


def _misread(data: bytes, decision: Decision, written: tuple[Action, Env] | None) -> str | None:
    """Why tcpserver reads ``data`` otherwise than its author meant it,
    or None when the two readings agree.  ``written`` is the rule as its
    line says (rules text); for a cdb it is what :func:`decode` makes of
    the data, the reading tcprules' output allows that is closest to
    tcpserver's (docs/rules-language.md §9)."""
    if written is None:
        try:
            written = decode(data)
        except DataError as exc:
            return (
                f"this record's data is not what tcprules writes: {exc}; tcpserver reads it "
                f"as {quote_text(reading(decision))}"
            )
    action, env = written
    meant: dict[str, str] = {}
    for name, value in env:
        text = name.decode(*ENCODING)
        meant.pop(text, None)
        meant[text] = value.decode(*ENCODING)
    if (action == "allow") == decision.allowed and meant == decision.env:
        return None
    return (
        f"tcpserver reads this rule as {quote_text(reading(decision))}, not as written "
        f"({quote_text(rule_text(action, env))}): a NUL byte ends a value, and tcpserver reads "
        "the bytes after it as an item of their own (one starting with 'D' denies)"
    )


def _env_problem(name: str) -> str | None:
    """What is wrong with the environment name ``name`` (decoded with
    :data:`~.wording.ENCODING`), or None."""
    if _NAME.match(name) and (name.upper() not in _KNOWN or name in _KNOWN):
        return None  # the usual case, decided without building a message
    shown = quote_text(name)
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


def judge_file(report: LintReport, has_default: bool, empty: str) -> None:
    """Add the findings about the file as a whole: no rules at all
    (``empty`` says so in the file's terms), or no default rule.  Nothing
    after a syntax error: tcprules refuses the whole file, so the database
    in use stays the old one, and what this text would allow is moot."""
    if any(f.code == "syntax" for f in report.findings):
        return
    if not report.records and not report.rules:
        report.findings.append(
            Finding(
                "empty",
                f"{empty}: tcpserver allows every connection, with no environment (as the "
                "single rule ':allow' would); write that rule to say it deliberately",
                "warning",
            )
        )
    elif not has_default:
        report.findings.append(
            Finding(
                "no-default",
                "there is no default rule (the empty key, a line ':allow' or ':deny'): "
                "tcpserver allows every client no rule matches, with no environment; add "
                "':allow' to say so deliberately, or ':deny' to refuse them",
                "warning",
            )
        )
