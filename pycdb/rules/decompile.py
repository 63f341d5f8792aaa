"""Rules text back from a tcprules database: the text from which
``tcprules`` rebuilds the file byte for byte.

tcprules writes each line's records in line order, and cdbmake's layout
is a function of the records in file order, so text that yields the same
records in the same order rebuilds the same bytes, provided the file is
laid out the way cdbmake lays it out.  :func:`decompile` therefore
refuses, before printing anything, a file for which no text can do that:

* one that is not structurally sound, or is sound but laid out otherwise
  than cdbmake does (another writer's slot order, tables in another
  order): no tcprules run writes those bytes (see
  :attr:`pycdb.validate.ValidationReport.canonical`);
* one with a record tcprules cannot have written: a key no line can
  produce (:mod:`pycdb.rules.forms`) or data that is not tcprules data
  (:func:`pycdb.rules.data.decode`).  The error names the record's
  offset, its key, and why.

With ``salvage=True`` it prints what can be printed instead: the records
of the record area in file order (up to the first one that runs into the
hash tables), each impossible one replaced by a ``#`` comment saying
which and why.  For a damaged file whose rules text is lost, that is the
best source to start again from; ``exact`` says whether it rebuilds the
file.

The text: records in file order, one line each, except that consecutive
records with the same data whose keys differ only in one dot-separated
number, counting up by one (``1.2.3.4``, ``1.2.3.5``, ...), fold back into
a range line (``1.2.3.4-5``), as long as the range re-expands to exactly
those keys.  A key tcprules would read as a range (a ``-`` and no ``=``
or ``@``) is always written as one, ``P N-N S``.  Each value is enclosed
in ``"`` unless it holds one, then in another byte it lacks.  A first
``#`` comment line says where the text came from (tcprules skips it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from typing import Any, Callable

from .._files import mapped
from .._format import HEADER_SIZE, PAIR, read_header
from .._text import quote, show
from .._version import __version__
from ..errors import CorruptError, DecompileError, LineRefused
from ..validate import KEY_SHOWN, ValidationReport, broken_record, describe, record_area_end, walk
from ._names import CLASSIC
from .data import decode, pick_delimiter
from .dialects import get
from .forms import DECIMAL, next_in_range, range_address
from .language import action_and_env, expand
from .soundness import validate_rules_bytes

__all__ = ["Decompiled", "decompile", "rest_of_line"]


def rest_of_line(data: bytes) -> bytes:
    """The text after the address, newline included (``:allow,A="1"``),
    that tcprules compiles to ``data``.  Checked by compiling it back, so
    a value's delimiter can never go wrong; ValueError (the reason) when
    no text gives ``data``."""
    action, env = decode(data)  # DataError is a ValueError
    parts = [b":", action.encode()]
    for i, (name, value) in enumerate(env):
        d = pick_delimiter(value, last=i == len(env) - 1)
        if d is None:  # pragma: no cover - decode refuses such data
            raise ValueError("a value uses every byte, leaving none to delimit it")
        q = bytes((d,))
        parts += (b",", name, b"=", q, value, q)
    text = b"".join(parts)
    try:
        again = action_and_env(text, 0)[2]
    except LineRefused:  # pragma: no cover - a bug, not a property of the file
        again = None
    if again != data:  # pragma: no cover
        raise ValueError(f"internal error: {text!r} does not compile back to the data")
    return text + b"\n"


def _why(key: bytes, data: bytes, dialect: str | None = None) -> str | None:
    """Why no line of ``dialect`` gives this record (its key first), or None."""
    problem = get(dialect).key_problem(key)
    if problem is not None:
        return f"no rules line produces this key: {problem}"
    try:
        decode(data)
    except ValueError as exc:
        return f"its data is not tcprules data: {exc}"
    return None


#: First bytes of keys that may need an address of their own: a comment's,
#: and ucspi-tcp6's CIDR keys'.
_ODD = (b"#", b"_", b"^")

#: Stands for "not worked out yet" in the cache of line endings (which
#: all end in a newline, so none is ever this).
_UNSEEN = b"unseen"


class Decompiled:
    """The text, produced as it is read: iterate for its lines (bytes,
    each ending in a newline), or call :meth:`chunks` for blocks of whole
    lines (cheaper for big files).  ``report`` is the validation that
    came first; ``exact`` says whether the text rebuilds the file byte
    for byte (always, unless salvaging); ``notes`` why not; ``skipped``
    counts the records left out as comments (known once the text is
    read).  Close it (or use ``with``) to release the file early."""

    def __init__(
        self,
        buf: Any,
        release: Callable[[], None],
        report: ValidationReport,
        *,
        exact: bool,
        salvage: bool,
        comment: bool,
        notes: list[str],
    ) -> None:
        self.report = report
        self.exact = exact
        self.notes = notes
        self.skipped = 0
        self._release = release
        self._chunks = self._generate(buf, salvage, comment)
        self._lines: Iterator[bytes] = self._split()

    def chunks(self) -> Iterator[bytes]:
        """The rest of the text in blocks of whole lines."""
        return self._chunks

    def _split(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            lines = chunk.split(b"\n")
            lines.pop()  # the empty text after the last newline
            for line in lines:
                yield line + b"\n"

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._lines)

    def close(self) -> None:
        self._chunks.close()

    def __enter__(self) -> Decompiled:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _generate(self, buf: Any, salvage: bool, comment: bool) -> Generator[bytes, None, None]:
        try:
            yield from self._text(buf, salvage, comment)
        finally:
            self._release()

    def _text(self, buf: Any, salvage: bool, comment: bool) -> Iterator[bytes]:
        report = self.report
        lang = get(report.dialect)
        if comment:
            # The name as a message shows bytes: one line, whatever the name holds.
            shown = show(os.fsencode(report.name))
            tcprules = "tcprules" if lang.name == CLASSIC else f"{lang.name} tcprules"
            head = [
                f"# {tcprules} text decompiled by pycdb {__version__} from {shown}"
                f" ({report.records} records)\n"
            ]
            head += [f"# NOT EXACT: {note}\n" for note in self.notes]
            yield "".join(head).encode()
        if len(buf) < HEADER_SIZE:
            return
        eod = record_area_end(read_header(buf), len(buf))
        rests: dict[bytes, bytes | None] = {}
        out: list[bytes] = []
        put = out.append

        # The group being built: its first key, the address that writes
        # it alone, its data, the text after the address, and, once a
        # second key folds in, the field that counts and the numbers so far.
        first = b""
        address = b""
        data = b""
        rest = b""
        field: tuple[int, int] | None = None
        low = high = 0
        open_ = False

        def line() -> bytes:
            if field is None:
                return address + rest
            start, end = field
            folded = range_address(first, start, end, high)
            keys = [first[:start] + DECIMAL[n] + first[end:] for n in range(low, high + 1)]
            if expand(folded) != keys:  # pragma: no cover - forms' promise, checked
                raise AssertionError(f"internal error: {folded!r} does not expand to the keys")
            return folded + rest

        # Where a salvaged file's records run into its hash tables.
        stop = ""
        batches = walk(buf, eod, report.name, data=True)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except CorruptError as exc:
                assert exc.offset is not None
                where = exc.offset
                stop = f"# the records end here: offset {where}: {broken_record(buf, eod, where)}\n"
                break
            for pos, key, value in zip(batch.positions, batch.keys, batch.data()):
                if open_ and value == data:
                    if field is not None:
                        start, end = field
                        if high < 255 and key == first[:start] + DECIMAL[high + 1] + first[end:]:
                            high += 1
                            continue
                    else:
                        found = next_in_range(first, key)
                        if found is not None:
                            start, end, low = found
                            field = (start, end)
                            high = low + 1
                            continue
                if open_:
                    put(line())
                    open_ = False
                rest_ = rests.get(value, _UNSEEN)
                if rest_ is _UNSEEN:
                    try:
                        rest_ = rest_of_line(value)
                    except ValueError:
                        rest_ = None
                    if len(rests) >= 1 << 16:
                        rests.clear()
                    rests[value] = rest_
                # Only keys with one of these bytes may need an address of
                # their own, or be impossible (see forms and language6).
                odd = (
                    45 in key or 58 in key or 10 in key or 44 in key or 47 in key or key[:1] in _ODD
                )
                try:
                    if rest_ is None:
                        raise ValueError
                    address = lang.address_for(key) if odd else key
                except ValueError:
                    if not salvage:  # pragma: no cover - validation refused it first
                        raise AssertionError(
                            "internal error: an impossible record was not found"
                        ) from None
                    self.skipped += 1
                    put(
                        f"# skipped the record at offset {pos} (key {quote(key, KEY_SHOWN)}): "
                        f"{_why(key, value, lang.name)}\n".encode()
                    )
                    continue
                first, data, rest, field, open_ = key, value, rest_, None, True
            if out:
                yield b"".join(out)
                out.clear()
        if open_:
            put(line())
        if stop:
            put(stop.encode())
        if out:
            yield b"".join(out)


def _refusal(buf: Any, report: ValidationReport, forced: bool) -> DecompileError | None:
    """Why no text rebuilds the file, or None when one does (``forced``:
    the dialect was given, not recognised)."""
    name = report.name
    structural = [f for f in report.findings if not f.code.startswith("rules-")]
    if structural:
        f = structural[0]
        more = len(report.findings) + report.suppressed - 1
        extra = f" (and {more} more problems: pycdb validate lists them)" if more else ""
        reason = f"not a sound cdb, so no rules text rebuilds it: {describe(f)}{extra}"
        return DecompileError(f"{name}: {reason}", reason, f.offset, f.key, report)
    if report.findings:
        f = report.findings[0]
        assert f.offset is not None and f.key is not None
        pos = f.offset
        key = f.key
        dpos = pos + 8 + len(key)
        dlen = PAIR.unpack_from(buf, pos)[1]
        why = _why(key, bytes(buf[dpos : dpos + dlen]), report.dialect) or f.message
        if not forced and report.dialect == CLASSIC and 58 in key:  # ':'
            why += (
                "; if an IPv6 tcprules wrote this database, name it: --dialect "
                "ucspi-tcp-ipv6 or --dialect ucspi-tcp6"
            )
        more = len(report.findings) + report.suppressed - 1
        extra = f" (and {more} more such records)" if more else ""
        return DecompileError(
            f"{name}: record at offset {pos} (key {quote(key, KEY_SHOWN)}): {why}{extra}",
            why,
            pos,
            key,
            report,
        )
    if not report.canonical:
        reason = (
            "the file is a sound cdb, but not laid out as tcprules writes it "
            f"({report.layout_note}), so no rules text rebuilds these bytes"
        )
        return DecompileError(f"{name}: {reason}", reason, None, None, report)
    return None


def decompile(
    source: str | os.PathLike[str] | bytes,
    *,
    salvage: bool = False,
    comment: bool = True,
    name: str | None = None,
    dialect: str | None = None,
) -> Decompiled:
    """The rules text of the tcprules database ``source`` (a path, or the
    file's bytes), as an iterator of lines.  The whole file is validated
    first, so :class:`DecompileError` comes before any text: a file no
    text rebuilds is refused (see the module docstring), unless
    ``salvage`` asks for the rules that can be read.  ``comment`` adds
    the first ``#`` line saying where the text came from.  A path is read
    as :func:`pycdb.validate.validate` reads it (a pipe to its end, a
    device refused); OSError when the file cannot be read.

    ``dialect`` names the tcprules that is to rebuild the file
    (:mod:`pycdb.rules.dialects`); None takes the one its keys show
    (:func:`pycdb.rules.dialects.recognise`), else ucspi-tcp 0.88:
    ``Decompiled.report.dialect`` says which.  In ucspi-tcp6's text a CIDR
    key is written as its network (``10.0.0.0/8``)."""
    buf: Any
    held = contextlib.ExitStack()  # the mapping, released when the text is done
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = bytes(source)
        label = name or "<bytes>"
    else:
        buf = held.enter_context(mapped(source, streams=True))
        label = name or os.fsdecode(source)
    try:
        report = validate_rules_bytes(buf, label, rules=True, limit=100, dialect=dialect)
        refusal = _refusal(buf, report, dialect is not None)
        notes: list[str] = []
        if refusal is not None:
            if not salvage:
                raise refusal
            notes.append(refusal.reason)
    except BaseException:
        held.close()
        raise
    return Decompiled(
        buf,
        held.close,
        report,
        exact=refusal is None,
        salvage=salvage,
        comment=comment,
        notes=notes,
    )
