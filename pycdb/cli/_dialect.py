"""``--dialect``, shared by the commands that read rules: the option's
text, checking its value, and, when it is not given, recognising a
database's dialect from its keys and saying so (on standard error:
standard output stays the drop-in's)."""

from __future__ import annotations

from ..errors import CorruptError
from ..reader import Reader
from ..rules.dialects import DEFAULT, NAMES, Recognition, get, recognise
from ._util import usage, write_err

__all__ = ["HELP", "OPTION", "chosen", "name_of", "recognised"]

#: The usage text of the option.
OPTION = "[--dialect " + "|".join(NAMES) + "]"

#: Its lines in a command's --help.
HELP = f"""  --dialect D    the tcprules dialect: {NAMES[0]} (0.88, the default),
                 {NAMES[1]} (Debian's ucspi-tcp-ipv6, Felix von Leitner's
                 IPv6 patch) or {NAMES[2]} (fehQlibs' ucspi-tcp6)"""


def name_of(value: str | bool | None, usage_text: str) -> str | None:
    """The dialect an option's value names (None when not given); a
    usage error (exit 100) naming the dialects for any other value."""
    if value is None:
        return None
    try:
        return get(str(value)).name
    except ValueError as exc:
        raise usage(f"{usage_text} ({exc})") from None


def recognised(path: str) -> Recognition | None:
    """What the keys of the cdb at ``path`` say about its dialect; None
    when the file cannot be read as a cdb (the command's own reading then
    reports why)."""
    try:
        with Reader(path) as reader:
            return recognise(reader.keys())
    except (OSError, CorruptError):
        return None


def chosen(path: str, given: str | None, what: str) -> str:
    """The dialect to read the database at ``path`` in: ``given`` (from
    ``--dialect``), else the one its keys are recognised as, else the
    default.  A recognition is said on standard error as ``pycdb: note:
    PATH: ...; WHAT as DIALECT``: ``what`` is the command's verb
    ("checked", "linted")."""
    if given is not None:
        return given
    found = recognised(path)
    if found is None:
        return DEFAULT
    if found.dialect is not None:
        write_err(
            f"pycdb: note: {path}: {found.describe()}; {what} as {found.dialect} "
            "(--dialect says otherwise)\n"
        )
        return found.dialect
    if found.mixed:
        write_err(f"pycdb: note: {path}: {found.describe()}; {what} as {DEFAULT} (--dialect)\n")
    return DEFAULT
