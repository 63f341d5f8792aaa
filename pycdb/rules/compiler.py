"""Compiling rules text into a cdb: ``tcprules OUT TMP < TEXT``.

The C core compiles in C (``src_c/rules_parse.c``); the pure backend
feeds its maker with the reference compiler here, a block of lines at a
time.  Both give the records tcprules gives, byte for byte, and the same
errors (docs/rules-language.md).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from itertools import repeat
from typing import TYPE_CHECKING, Callable, ClassVar

from ..errors import LineRefused, RulesSyntaxError, TooLargeError
from .language import Source, action_and_env, expand, source_chunks, syntax_error, trim
from .messages import reason
from .reading import blocks, gather

if TYPE_CHECKING:
    from ..writer import Writer

__all__ = ["Skipped", "compile", "compile_chunks", "compile_fork_chunks", "compile_into"]


_CACHE_SIZE = 4096


@dataclasses.dataclass
class Skipped:
    """The lines tcprules skips without a word because they hold text but
    no ``:`` (``192.0.2.9 allow``): how many, and the numbers of the
    first :data:`KEPT` of them."""

    KEPT: ClassVar[int] = 8

    count: int = 0
    first: list[int] = dataclasses.field(default_factory=list)

    def add(self, lineno: int) -> None:
        if len(self.first) < self.KEPT:
            self.first.append(lineno)
        self.count += 1


def _bulk(block: bytes, cache: dict[bytes, bytes]) -> tuple[list[bytes], list[bytes]] | None:
    """(keys, data) of every record of a block of lines, in order.  The
    data of the text after the colon, which repeats from line to line in
    real files, comes from ``cache`` (keyed by the untrimmed text: only
    blanks are trimmed, so the first ':' never moves).  Raises
    ``LineRefused`` if any line is refused, without saying which, and
    returns None for a block with a line tcprules skips for want of a
    ``:``: :func:`_slow` then says which."""
    keys: list[bytes] = []
    values: list[bytes] = []
    key = keys.append
    value = values.append
    get = cache.get
    lines = block.split(b"\n")
    if block[:1] == b"#" or b"\n#" in block:
        lines = [line for line in lines if line[:1] != b"#"]
    # An empty line, or one without ':', has no separator.
    for address, colon, rest in map(bytes.partition, lines, repeat(b":")):
        if not colon:
            if address and address.strip(b" \t"):
                return None
            continue
        data = get(rest)
        if data is None:
            data = action_and_env(b":" + rest.rstrip(b" \t"), 0)[2]
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[rest] = data
        if 45 in address:  # '-': perhaps a range (see expand)
            expanded = expand(address)
            keys += expanded
            values += [data] * len(expanded)
        else:
            key(address)
            value(data)
    return keys, values


def _slow(
    block: bytes,
    lineno: int,
    add: Callable[[bytes, bytes], None],
    filename: str,
    skipped: Skipped | None,
) -> int:
    """Compile a block one line and one record at a time, so an error
    names its line and happens where tcprules meets it (a record that
    does not fit before a bad line, or the other way round).  ``lineno``
    is the number of the line before the block."""
    records = 0
    for line in block.split(b"\n"):
        lineno += 1
        if not line or line[0] == 35:  # '#'
            continue
        line = trim(line)
        colon = line.find(b":")
        if colon < 0:
            if line and skipped is not None:
                skipped.add(lineno)
            continue
        try:
            data = action_and_env(line, colon)[2]
            keys = expand(line[:colon])
        except LineRefused as bad:
            raise syntax_error(filename, lineno, line, bad) from None
        for key in keys:
            try:
                add(key, data)
            except TooLargeError as exc:
                raise TooLargeError(f"{filename}:{lineno}: {exc}") from None
            records += 1
    return records


#: Bytes of text per add_many call: bulk work pays per block, not per line.
_BULK = 1 << 18


def compile_chunks(
    chunks: Iterable[bytes],
    add: Callable[[bytes, bytes], None],
    filename: str,
    add_many: Callable[[list[bytes], list[bytes]], None] | None = None,
    skipped: Skipped | None = None,
) -> int:
    """The pure backend's compiler: the records of the rules in ``chunks``,
    in tcprules' order, given to ``add(key, data)`` or, a block of lines
    at a time, to ``add_many(keys, datas)`` (all or nothing); returns the
    number of records, and counts in ``skipped`` the lines skipped for
    want of a ``:``.  A block that fails in bulk, for a refused line, a
    record past the size limit or a skipped line, is redone line by line
    for the exact error or line number."""
    records = 0
    lineno = 0
    cache: dict[bytes, bytes] = {}
    if add_many is not None:
        chunks = gather(chunks, _BULK)
    for block in blocks(chunks):
        if add_many is not None:
            try:
                done = _bulk(block, cache)
                if done is not None:
                    add_many(*done)
            except (LineRefused, TooLargeError):
                pass
            else:
                if done is not None:
                    records += len(done[0])
                    lineno += block.count(b"\n") + 1
                    continue
        records += _slow(block, lineno, add, filename, skipped)
        lineno += block.count(b"\n") + 1
    return records


def compile_fork_chunks(
    chunks: Iterable[bytes],
    add: Callable[[bytes, bytes], None],
    filename: str,
    dialect: str,
    add_many: Callable[[list[bytes], list[bytes]], None] | None = None,
    skipped: Skipped | None = None,
) -> int:
    """The compiler of an IPv6 fork's tcprules (``dialect`` names it,
    :mod:`pycdb.rules.dialects`), in Python on both backends: the records
    of the rules in ``chunks``, in its order, given to ``add(key, data)``
    or, a block of lines at a time, to ``add_many`` (all or nothing; a
    block that does not fit is redone one record at a time, so the error
    names the line).  Returns the number of records; counts in
    ``skipped`` the lines skipped without a word (ucspi-tcp6's lines with
    neither ``:`` nor ``,``).  Raises RulesSyntaxError (worded for the
    dialect) at the first refused line, before adding any record of it."""
    from .dialects import get

    parse = get(dialect).parse_line
    records = 0
    lineno = 0
    for block in blocks(chunks if add_many is None else gather(chunks, _BULK)):
        keys: list[bytes] = []
        datas: list[bytes] = []
        owners: list[int] = []
        for line in block.split(b"\n"):
            lineno += 1
            try:
                parsed = parse(line)
            except LineRefused as bad:
                _add_each(keys, datas, owners, add, filename)  # what came before, first
                raise syntax_error(filename, lineno, line, bad, dialect) from None
            if parsed is None:
                if skipped is not None and line[:1] != b"#" and trim(line):
                    skipped.add(lineno)
                continue
            data = parsed[3]
            for key in parsed[4]:
                keys.append(key)
                datas.append(data)
                owners.append(lineno)
        if add_many is not None:
            try:
                add_many(keys, datas)
            except TooLargeError:
                _add_each(keys, datas, owners, add, filename)
        else:
            _add_each(keys, datas, owners, add, filename)
        records += len(keys)
    return records


def _add_each(
    keys: list[bytes],
    datas: list[bytes],
    owners: list[int],
    add: Callable[[bytes, bytes], None],
    filename: str,
) -> None:
    """Add records one at a time; a TooLargeError names the line."""
    for key, data, lineno in zip(keys, datas, owners):
        try:
            add(key, data)
        except TooLargeError as exc:
            raise TooLargeError(f"{filename}:{lineno}: {exc}") from None
    keys.clear()
    datas.clear()
    owners.clear()


def compile(  # noqa: A001 - the verb of the domain, as in tcprules
    source: Source,
    cdb_path: str | os.PathLike[str],
    *,
    tmp_path: str | os.PathLike[str] | None = None,
    filename: str | None = None,
    dialect: str | None = None,
) -> int:
    """Build ``cdb_path`` from rules text, byte-identical to ``tcprules
    cdb_path tmp_path < text``, and publish it atomically; returns the
    number of records.  On any error nothing is published and the
    temporary file is removed.  ``source`` is read as for :func:`parse`,
    so a tool can edit rules as :class:`Rule` objects and rebuild::

        rules = [r for r in parse("/etc/tcp.smtp") if r.address != b"10.0.0.7"]
        rules.insert(0, Rule.make("10.0.0.7", "deny"))
        compile(rules, "/etc/tcp.smtp.cdb")

    ``dialect`` names the tcprules to be identical to
    (:mod:`pycdb.rules.dialects`; ucspi-tcp 0.88 by default): the IPv6
    forks' keys and order, and their refusals (a line ucspi-tcp-ipv6's
    tcprules would loop on for ever is a RulesSyntaxError).  The active
    backend does the work (the cffi one parses ucspi-tcp 0.88's text in
    C; the forks' text is parsed in Python by either)."""
    from ..writer import Writer
    from .dialects import get

    lang = get(dialect)  # an unknown dialect fails before anything is created
    name, chunks = source_chunks(source, filename)
    writer = Writer(cdb_path, tmp_path=tmp_path)
    try:
        count = compile_into(writer, chunks, name, dialect=lang.name)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return count


def compile_into(
    writer: Writer,
    chunks: Iterable[bytes],
    filename: str,
    skipped: Skipped | None = None,
    *,
    dialect: str | None = None,
) -> int:
    """Add the records of rules text given in chunks to an open
    :class:`pycdb.Writer` (not committed: the caller decides); returns
    their number, and counts in ``skipped`` the lines tcprules skips for
    want of a ``:``.  The backend the Writer bound to does the work: the
    C core's compiler, or this module's reference one feeding its
    maker; an IPv6 fork's text (``dialect``) goes through
    :func:`compile_fork_chunks` on either.  Raises RulesSyntaxError,
    TooLargeError (naming the line), OSError, MemoryError."""
    from .dialects import CLASSIC, get

    impl, maker = writer._backend_maker()
    lang = get(dialect)
    if lang.name != CLASSIC:
        return compile_fork_chunks(chunks, maker.add, filename, lang.name, maker.add_many, skipped)
    if impl.RulesCompiler is None:
        return compile_chunks(chunks, maker.add, filename, maker.add_many, skipped)

    def refused(lineno: int, line: bytes, code: int, pos: int) -> Exception:
        return RulesSyntaxError(filename, lineno, line, reason(code, line, pos))

    compiler = impl.RulesCompiler(maker, refused)
    try:
        for chunk in chunks:
            compiler.feed(chunk)
        records = compiler.end()
    except TooLargeError as exc:
        raise TooLargeError(f"{filename}:{compiler.line()}: {exc}") from None
    if skipped is not None:
        count, first = compiler.skipped()
        skipped.count += count
        skipped.first += first[: Skipped.KEPT - len(skipped.first)]
    return records
