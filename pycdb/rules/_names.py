"""The three dialects' names, spelled once for every module of the rules
layer (:mod:`pycdb.rules.dialects` says what each means)."""

from __future__ import annotations

from typing import Literal

__all__ = ["CLASSIC", "FEFE", "FEH", "NAMES", "DialectName"]

#: A dialect's name, as ``--dialect`` and ``dialect=`` take it.
DialectName = Literal["ucspi-tcp", "ucspi-tcp-ipv6", "ucspi-tcp6"]

#: djb's ucspi-tcp 0.88 (Debian's ``ucspi-tcp``): IPv4 only.  The default.
CLASSIC: DialectName = "ucspi-tcp"
#: ucspi-tcp 0.88 with Felix von Leitner's IPv6 patch (Debian's ``ucspi-tcp-ipv6``).
FEFE: DialectName = "ucspi-tcp-ipv6"
#: Erwin Hoffmann's ucspi-tcp6 (fehQlibs), 1.11.
FEH: DialectName = "ucspi-tcp6"

NAMES: tuple[DialectName, ...] = (CLASSIC, FEFE, FEH)
