"""What the run script's tcpserver options make unreachable.

A ``run`` script starts tcpserver with options that decide which keys it
can ever look up (tcpserver(1); docs/lookup-order.md §2): with ``-H`` it
looks up no host name, so no ``=host``, ``=.suffix``, ``=`` or
``info@=host`` key matches any connection; with ``-R`` it asks no ident
server, so no ``info@`` key does.  Such a rule never fires whatever it
says; it gets one warning, ``never-fires``, and nothing else (a grant of
RELAYCLIENT that can never happen is no open relay).
"""

from __future__ import annotations

from ..._text import quote
from ..forms import Form
from .report import Said

__all__ = ["never_fires"]

_BY_NAME = ("host", "suffix", "any-name", "ident-host")
_BY_IDENT = ("ident-ip", "ident-host")


def never_fires(key: bytes, form: Form, no_dns: bool, no_ident: bool) -> Said | None:
    """The warning for ``key`` (of ``form``) when tcpserver, run with
    ``-H`` (``no_dns``) or ``-R`` (``no_ident``), never looks it up;
    None when it may."""
    if no_ident and form in _BY_IDENT:
        return (
            "warning",
            "never-fires",
            f"{quote(key)} never fires: tcpserver runs with -R (lint --no-ident), so it asks "
            "no ident server and TCPREMOTEINFO is never set; only keys without 'user@' match",
        )
    if no_dns and form in _BY_NAME:
        return (
            "warning",
            "never-fires",
            f"{quote(key)} never fires: tcpserver runs with -H (lint --no-dns), so it looks "
            "up no host name and TCPREMOTEHOST is never set; only address keys and the "
            "default match",
        )
    return None
