"""Is the cdb what tcprules makes of the text?  ``pycdb lint --cdb``.

The text is compiled (as ``pycdb make`` does, into a private temporary
directory, never touching the database) and the bytes compared with the
database's.  tcprules' output is fixed by its input (its records in line
order, docs/rules-language.md §8 and §9, in cdbmake's layout,
docs/format.md §5), so any difference means the database was built from
other text, or not by tcprules.  The finding names the first record that
differs, and the modification times when the text is the newer.
"""

from __future__ import annotations

import datetime
import os
import tempfile

from ...errors import CorruptError, TooLargeError
from ...findings import Finding
from ...reader import Reader
from ..compiler import compile as compile_rules
from .sniff import read
from .wording import record

__all__ = ["stale"]

#: A record of the text: (key, data, the line that adds it).
Record = tuple[bytes, bytes, int]


def stale(
    name: str,
    text: bytes,
    modified: int | None,
    cdb: str | os.PathLike[str],
    refused: int | None,
    records: list[Record],
    dialect: str = "ucspi-tcp",
) -> Finding | None:
    """The ``stale`` (or ``newer-text``) finding for the database ``cdb``
    against the rules ``text`` (named ``name``; modified at ``modified``
    ns, when known), or None when it is up to date.  ``refused`` is the
    first line tcprules refuses, if any; ``records`` what the text
    compiles to.  OSError when ``cdb`` cannot be read."""
    db_name = os.fsdecode(cdb)
    db_bytes, st = read(cdb)
    db_mtime = st.st_mtime_ns
    newer = ""
    if modified is not None and modified > db_mtime:
        newer = f"{name} was modified after it ({_when(modified)}; the database {_when(db_mtime)})"
    if refused is not None:
        return Finding(
            "stale",
            f"{db_name} was not compiled from this text: tcprules refuses it (line "
            f"{refused})" + (f", and {newer}" if newer else ""),
        )
    try:
        built = _compiled(text, dialect)
    except TooLargeError as exc:
        return Finding("stale", f"{db_name} cannot be compared with the text: {exc}")
    if built == db_bytes:
        if newer:
            return Finding(
                "newer-text",
                f"{newer}, but compiles to the same bytes: {db_name} is up to date",
                "info",
            )
        return None
    where = _first_difference(db_name, db_bytes, records)
    because = f", and {newer}" if newer else ""
    rebuild = f"; rebuild it: tcprules {db_name} {db_name}.tmp < {name}"
    return Finding(
        "stale",
        f"{db_name} is not what tcprules makes of this text{because}: {where}{rebuild}",
    )


def _when(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _compiled(text: bytes, dialect: str) -> bytes:
    """The bytes ``dialect``'s tcprules writes for ``text`` (compiled in a
    private temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="pycdb-lint-") as tmp:
        out = os.path.join(tmp, "rules.cdb")
        compile_rules(text, out, dialect=dialect)
        return read(out)[0]


def _first_difference(db_name: str, db_bytes: bytes, records: list[Record]) -> str:
    try:
        with Reader.from_bytes(db_bytes, db_name) as reader:
            stored = list(reader.items())
    except CorruptError as exc:
        return f"it is not a readable cdb ({exc})"
    for i, ((key, data), (tkey, tdata, line)) in enumerate(zip(stored, records)):
        if (key, data) != (tkey, tdata):
            return (
                f"the first difference is record {i + 1}: the database has "
                f"{record(key, data)} where line {line} gives {record(tkey, tdata)}"
            )
    if len(stored) > len(records):
        key, data = stored[len(records)]
        return (
            f"the database has {len(stored)} records, the text gives {len(records)}: record "
            f"{len(records) + 1}, {record(key, data)}, is not in the text"
        )
    if len(stored) < len(records):
        key, data, line = records[len(stored)]
        return (
            f"the text gives {len(records)} records, the database has {len(stored)}: line "
            f"{line}'s {record(key, data)} is missing from it"
        )
    return "the records are the same, but the hash tables differ (tcprules did not write it)"
