"""Is a tcprules database sound?  The structural validation of
:mod:`pycdb.validate`, plus what only a rules database must satisfy:
every record's data is data tcprules writes (:func:`pycdb.rules.data.decode`
accepts it) and every key is one a tcprules line can produce
(:mod:`pycdb.rules.forms`).  A file that passes both is one tcprules
could have written, and the text :mod:`pycdb.rules.decompile` prints for
it compiles back to it.  ``pycdb validate`` is :func:`validate_rules`.

Which files get the rules checks: those asked for (``rules=True``, the
``--rules`` option), and otherwise those *recognised* as tcprules
databases, because an administrator who validates some other cdb (a
qmail users/cdb, a key set) wants its structure checked, not a finding for
every record that is not a rule.  Recognised means both:

* at least one record's data starts like a tcprules item (``D`` for a
  deny, ``+`` for an instruction): a file whose values are all empty is a
  plain key set as much as an allow-only rules file, and gains nothing
  from the rules checks but findings on keys;
* at least half of the records hold data shaped like tcprules' (empty,
  or starting with ``D`` or ``+``), so a rules database with some
  damaged records is still recognised (and its damage reported), while
  other kinds of data, which start with any byte, almost never are.

``rules=False`` (``--no-rules``) never applies them.  The report says
which kind was assumed and why (``ValidationReport.kind``,
``ValidationReport.kind_basis``).

Which keys a tcprules line can produce depends on the dialect
(:mod:`pycdb.rules.dialects`; ucspi-tcp 0.88 writes no ``:``, the IPv6
forks do).  ``dialect`` names it; by default the keys decide: a database
whose keys only one fork writes is checked against that fork's tcprules
(:func:`pycdb.rules.dialects.recognise`), any other against 0.88's.  The
keys are checked against every dialect in the one walk, so recognising
costs no second pass.  ``ValidationReport.dialect`` and ``dialect_basis``
say which, and why.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from itertools import repeat

from .._files import mapped
from .._format import Buffer
from .._text import quote
from ..errors import DataError
from ..findings import Finding
from ..validate import KEY_SHOWN, Batch, ValidationReport, validate_bytes
from ._names import CLASSIC, NAMES
from .data import decode
from .dialects import Recognition, get

__all__ = ["data_problem", "validate_rules", "validate_rules_bytes"]

#: Data known to be fine (None) or why not, for the values seen lately:
#: rules databases repeat a handful of values over and over.
_CACHE_SIZE = 1 << 16


def data_problem(data: bytes) -> DataError | None:
    """Why tcprules cannot have written ``data`` (the DataError
    :func:`pycdb.rules.data.decode` raises), or None."""
    try:
        decode(data)
    except DataError as exc:
        return exc
    return None


def _looks(data: bytes) -> bool:
    """Shaped like tcprules data: empty, or starting like its items."""
    return not data or data[0] in (68, 43)  # 'D', '+'


class _Rules:
    """The rules checks, a batch of records at a time (the ``batches``
    hook of :func:`pycdb.validate.validate_bytes`).  Findings are kept up to
    ``limit`` and counted beyond, so a file that is not a rules database
    at all costs bounded memory before it is found not to be one."""

    def __init__(self, limit: int, dialects: tuple[str, ...] = NAMES) -> None:
        self.limit = limit
        self.findings: list[Finding] = []  # about the data: every dialect's
        self.suppressed = 0
        # About the keys, for each dialect they are checked against.
        self.key_findings: dict[str, list[tuple[int, Finding]]] = {d: [] for d in dialects}
        self.key_suppressed: dict[str, int] = {d: 0 for d in dialects}
        self.recognition = Recognition()
        self.records = 0
        self.items = 0  # records whose data starts like a tcprules item
        self.shaped = 0  # ... or is empty
        self._cache: dict[bytes, DataError | None] = {}

    def _full(self) -> bool:
        return len(self.findings) >= self.limit

    def _data_error(self, data: bytes) -> DataError | None:
        cache = self._cache
        if data in cache:
            return cache[data]
        err = data_problem(data)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[data] = err
        return err

    def __call__(self, batch: Batch) -> None:
        keys = batch.keys
        datas = batch.data()
        self.records += len(keys)
        found: list[tuple[int, int, Finding]] = []

        # -- data: each distinct value once --------------------------------
        bad: set[bytes] = set()
        for data, count in Counter(datas).items():
            if data and data[0] in (68, 43):
                self.items += count
                self.shaped += count
                if self._data_error(data) is not None:
                    bad.add(data)
            elif not data:
                self.shaped += count
            else:
                bad.add(data)  # why exactly is worked out only if it is kept
        if bad:
            for i, data in enumerate(datas):
                if data not in bad:
                    continue
                if self._full():
                    self.suppressed += 1
                    continue
                err = self._data_error(data)
                assert err is not None
                pos = batch.positions[i]
                dpos = pos + 8 + len(keys[i])
                found.append(
                    (
                        pos,
                        0,
                        Finding(
                            "rules-data",
                            f"the record at {pos} (key {quote(keys[i], KEY_SHOWN)}) holds data "
                            f"tcprules cannot write: {err} (at data byte {err.offset}, file "
                            f"offset {dpos + err.offset})",
                            offset=pos,
                            key=keys[i],
                        ),
                    )
                )

        found.sort(key=lambda f: (f[0], f[1]))
        room = self.limit - len(self.findings)
        self.findings += [f for _, _, f in found[:room]]
        self.suppressed += max(0, len(found) - room)

        # -- keys: only those holding a byte that can matter --------------
        joined = b"".join(keys)
        suspects: Iterable[int] = ()
        # '-', ':', newline, ',', '/', and the first bytes '_', '^' of CIDR keys
        if any(c in joined for c in (45, 58, 10, 44, 47, 95, 94)):
            suspects = [i for i, k in enumerate(keys) if _suspect(k)]
        elif 35 in joined and any(map(bytes.startswith, keys, repeat(b"#"))):
            suspects = [i for i, k in enumerate(keys) if k[:1] == b"#"]
        for i in suspects:
            key = keys[i]
            self.recognition.add(key)
            for name, kept in self.key_findings.items():
                why = get(name).key_problem(key)
                if why is None:
                    continue
                if len(kept) >= self.limit:
                    self.key_suppressed[name] += 1
                    continue
                pos = batch.positions[i]
                tcprules = "tcprules" if name == CLASSIC else f"{name} tcprules"
                kept.append(
                    (
                        pos,
                        Finding(
                            "rules-key",
                            f"the record at {pos} has the key {quote(key, KEY_SHOWN)}, which no "
                            f"{tcprules} line can produce: {why}",
                            offset=pos,
                            key=key,
                        ),
                    )
                )

    def kind(self, forced: bool | None) -> tuple[str, str]:
        """(kind, basis) for the report."""
        n = self.records
        shaped = f"{self.shaped} of {n} records hold data shaped like tcprules'"
        if forced is True:
            return "tcprules", "checked as a tcprules database, as asked (--rules)"
        if forced is False:
            return "cdb", "checked as a plain cdb, as asked (--no-rules)"
        if not n:
            return "cdb", "no records: nothing marks it as a tcprules database"
        if self.items and 2 * self.shaped >= n:
            return "tcprules", f"recognised as a tcprules database: {shaped}"
        fork = self.recognition.dialect
        if fork is not None and self.shaped == n:
            return "tcprules", (
                f"recognised as a tcprules database: {shaped}, and its keys are ones {fork}'s "
                "tcprules writes"
            )
        if not self.items and self.shaped == n:
            return "cdb", (
                "not recognised as a tcprules database: every record's data is empty, as in a "
                "plain key set (or allow rules without instructions: --rules checks its keys)"
            )
        return "cdb", f"not recognised as a tcprules database: only {shaped} (--rules forces it)"

    def dialect(self, forced: str | None) -> tuple[str, str]:
        """(dialect, basis) for the report: the one asked for, else the
        one recognised from the keys, else ucspi-tcp 0.88 (with an empty
        basis, unless the keys are of both forks)."""
        if forced is not None:
            return forced, f"keys checked against {forced}'s tcprules, as asked (--dialect)"
        found = self.recognition
        if found.dialect is not None:
            return found.dialect, found.describe()
        # The default, with nothing to say unless both forks' keys are there.
        return CLASSIC, found.describe() if found.mixed else ""


def _suspect(key: bytes) -> bool:
    """Whether some dialect's tcprules cannot write ``key``, or it says
    which dialect wrote it: only keys with one of these bytes can."""
    return 45 in key or 58 in key or 10 in key or 44 in key or 47 in key or key[:1] in _FIRST


_FIRST = (b"#", b"_", b"^")


def validate_rules_bytes(
    buf: Buffer,
    name: str = "<bytes>",
    *,
    rules: bool | None = None,
    limit: int = 1000,
    dialect: str | None = None,
) -> ValidationReport:
    """Validate the cdb in ``buf``: its structure, and, for a tcprules
    database (``rules=True``, or recognised when ``rules`` is None), its
    keys and data.  At most ``limit`` findings are kept, structural ones
    first; the rest are counted in ``suppressed``.  ``dialect`` names the
    tcprules whose keys it must hold (:mod:`pycdb.rules.dialects`); None
    recognises it from the keys (see the module docstring)."""
    forced = None if dialect is None else get(dialect).name
    hook = _Rules(limit, NAMES if forced is None else (forced,)) if rules is not False else None
    report = validate_bytes(buf, name, limit=limit, batches=hook)
    if hook is None:
        report.kind, report.kind_basis = _Rules(limit).kind(False)
        return report
    report.kind, report.kind_basis = hook.kind(rules)
    if report.kind == "tcprules":
        report.dialect, report.dialect_basis = hook.dialect(forced)
        merged = [(f.offset or 0, 0, f) for f in hook.findings]
        merged += [(pos, 1, f) for pos, f in hook.key_findings[report.dialect]]
        merged.sort(key=lambda t: (t[0], t[1]))  # file order; a record's data first
        for _, _, f in merged:
            report.keep(f)
        report.suppressed += hook.suppressed + hook.key_suppressed[report.dialect]
    return report


def validate_rules(
    path: str | os.PathLike[str],
    *,
    rules: bool | None = None,
    limit: int = 1000,
    dialect: str | None = None,
) -> ValidationReport:
    """Validate the file at ``path`` (see :func:`validate_rules_bytes`),
    read as :func:`pycdb.validate.validate` reads it; OSError when it
    cannot be read."""
    with mapped(path, streams=True) as buf:
        return validate_rules_bytes(
            buf, os.fsdecode(path), rules=rules, limit=limit, dialect=dialect
        )
