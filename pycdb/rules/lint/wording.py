"""How lint writes a record's data and names in its messages: as the
rules text that writes it, or as tcpserver reads it.  Every byte goes
through the one escaper, :func:`pycdb._text.show`/:func:`~pycdb._text.quote`."""

from __future__ import annotations

from ..._text import quote, show
from ...errors import DataError
from ..data import Action, Env, decode
from ..ruleset import Decision

__all__ = ["ENCODING", "quote_text", "reading", "record", "rule_text", "written"]

#: How the names and values of :attr:`pycdb.rules.Decision.env` (text)
#: map back to their bytes.
ENCODING = ("utf-8", "surrogateescape")


def quote_text(text: str) -> str:
    """A name or value decoded with :data:`ENCODING`, quoted as its bytes
    would be."""
    return quote(text.encode(*ENCODING))


def rule_text(action: Action, env: Env) -> str:
    """The text after a rule's ':': ``allow,NAME="VALUE"...``."""
    return action + "".join(f',{show(n)}="{show(v)}"' for n, v in env)


def reading(decision: Decision) -> str:
    """A record's data as tcpserver reads it (docs/lookup-order.md §4),
    written as a rule would be."""
    if not decision.allowed:
        return "deny"
    env = "".join(
        f',{show(n.encode(*ENCODING))}="{show(v.encode(*ENCODING))}"'
        for n, v in decision.env.items()
    )
    return "allow" + env


def written(data: bytes) -> str:
    """A record's data as the tcprules text that writes it (or the raw
    bytes, when tcprules could not have written it)."""
    try:
        action, env = decode(data)
    except DataError:
        return f"data {quote(data)}"
    return rule_text(action, env)


def record(key: bytes, data: bytes) -> str:
    """A record as the quoted rules line that writes it: ``'KEY:allow'``."""
    return quote(key + b":" + written(data).encode(*ENCODING))
