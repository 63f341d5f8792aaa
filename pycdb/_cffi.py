"""The cffi backend, and the one module that touches the compiled core.

Everything else in pycdb reaches C through the names defined here, which
match ``_pure`` one for one.  C return codes become pycdb exceptions here
and nowhere else.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import Any

from ._common import as_bytes
from ._version import __version__
from .errors import CorruptError, TooLargeError

try:
    # Two builds of the same C: lib releases the GIL around calls (writing,
    # parsing), fast keeps it (lookups, too short to be worth a release).
    from ._cdb_c import ffi, lib
    from ._cdb_lookup import ffi as fast_ffi
    from ._cdb_lookup import lib as fast
except ImportError as exc:  # pragma: no cover - exercised by the backend tests
    raise ImportError(
        f"pycdb's C extension is not available: {exc}. "
        "Reinstall pycdb with a C compiler present, or use PYCDB_BACKEND=pure."
    ) from exc

from . import _pure

for _lib in (lib, fast):
    _built = ffi.string(_lib.pycdb_version()).decode()
    if _built != __version__:  # pragma: no cover - a stale in-place build
        raise ImportError(
            f"pycdb's C extension was built for pycdb {_built}, but this is pycdb "
            f"{__version__}; rebuild it (pip install .)"
        )

NAME = "cffi"

_ECORRUPT = lib.PYCDB_ECORRUPT
_ETOOBIG = lib.PYCDB_ETOOBIG
_ENOMEM = lib.PYCDB_ENOMEM
_get = fast.pycdb_get
_findnext = fast.pycdb_findnext
_count = fast.pycdb_count
_hash = fast.pycdb_hash
_add = lib.pycdb_maker_add


def hash(key: bytes) -> int:  # noqa: A001 - the cdb hash, as djb names it
    """djb's cdb hash of ``key``."""
    return int(_hash(key, len(key)))


class Handle:
    """Lookups over a mapped file whose header was already checked.

    The struct handed to C is never written after construction, so one
    handle serves any number of threads; the buffer stays mapped for as
    long as a method of this object is running.
    """

    __slots__ = ("_buf", "_ptr", "_m", "_header", "_eod", "_name")

    def __init__(self, buf: Any, header: list[tuple[int, int]], eod: int, name: str) -> None:
        self._buf = buf
        self._ptr = fast_ffi.from_buffer("unsigned char[]", buf)
        m = fast_ffi.new("pycdb_map *")
        m.base = self._ptr
        m.size = len(buf)
        m.eod = eod
        self._m = m
        self._header = header
        self._eod = eod
        self._name = name

    def _corrupt(self, key: bytes) -> CorruptError:
        # The C walk found corruption; the pure walk names it.
        try:
            _pure.Handle(self._buf, self._header, self._eod, self._name).get_all(key)
        except CorruptError as exc:
            return exc
        return CorruptError(f"{self._name}: corrupt cdb (found by the C core)")  # pragma: no cover

    def get(self, key: bytes, default: object = None) -> object:
        try:
            r = _get(self._m, key, len(key))
        except TypeError:
            key = as_bytes(key)
            r = _get(self._m, key, len(key))
        if r > 1:
            return self._buf[r & 0xFFFFFFFF : r >> 32]
        if r == 0:
            return default
        raise self._corrupt(key)

    def get_all(self, key: bytes) -> list[bytes]:
        key = as_bytes(key)
        f = fast_ffi.new("pycdb_find *")
        buf = self._buf
        out = []
        while True:
            r = _findnext(self._m, f, key, len(key))
            if r == 1:
                out.append(buf[f.dpos : f.dpos + f.dlen])
            elif r == 0:
                return out
            else:
                raise self._corrupt(key)

    def count(self) -> int:
        n = _count(self._m)
        if n < 0:
            return _pure.Handle(self._buf, self._header, self._eod, self._name).count()
        return int(n)


class Maker:
    """Streams records to ``fd`` through the C writer."""

    def __init__(self, fd: int, limit: int) -> None:
        mk = lib.pycdb_maker_new(fd, limit)
        if mk == ffi.NULL:
            err = ffi.errno
            if err:
                raise OSError(err, os.strerror(err))
            raise MemoryError("pycdb: out of memory")
        self._mk: Any = ffi.gc(mk, lib.pycdb_maker_free)
        self._broken = False

    @property
    def count(self) -> int:
        return int(lib.pycdb_maker_count(self._mk)) if self._mk is not None else 0

    def _fail(self, r: int, klen: int, dlen: int) -> None:
        if r == _ETOOBIG:
            raise TooLargeError(
                f"a record with a {klen}-byte key and a {dlen}-byte value would take the "
                "file past the cdb format's 4 GiB limit"
            )
        self._broken = True
        if r == _ENOMEM:
            raise MemoryError("pycdb: out of memory")
        err = ffi.errno or errno.EIO
        raise OSError(err, os.strerror(err))

    def add(self, key: bytes, value: bytes) -> None:
        if self._broken or self._mk is None:
            raise ValueError("this writer failed earlier or is closed; abort it")
        try:
            r = _add(self._mk, key, len(key), value, len(value))
        except TypeError:
            key = as_bytes(key)
            value = as_bytes(value, "value")
            r = _add(self._mk, key, len(key), value, len(value))
        if r:
            self._fail(r, len(key), len(value))

    def finish(self) -> None:
        if self._broken or self._mk is None:
            raise ValueError("this writer failed earlier or is closed; abort it")
        self._broken = True  # a maker finishes once
        r = lib.pycdb_maker_finish(self._mk)
        if r:
            self._fail(r, 0, 0)

    def close(self) -> None:
        if self._mk is not None:
            ffi.release(self._mk)
            self._mk = None


# ---- rules: the tcprules compiler (src_c/rules_parse.c) -------------------------
#
# The text is fed to C in chunks; C parses every line and adds its records
# to the maker itself, with the GIL released, so no Python runs per line.

_ESYNTAX = lib.PYCDB_ESYNTAX
_rules_feed = lib.pycdb_rules_feed


def compile_rules(chunks: Iterable[bytes], maker: Maker, filename: str) -> int:
    """Compile rules text given in chunks into ``maker``; returns the
    number of records.  Raises what ``_pure.compile_rules`` raises, with
    the same messages: RulesSyntaxError, TooLargeError (prefixed with
    ``filename:line:``), MemoryError, OSError."""
    from .errors import RulesSyntaxError
    from .rules.parse import reason

    # The maker struct as this module's lib sees it.
    mk = getattr(maker, "_mk_io", None) or maker._mk
    if mk is None or getattr(maker, "_broken", False):
        raise ValueError("this cdb writer was finished, failed earlier, or is closed")
    st = ffi.new("pycdb_rules_status *")
    r = lib.pycdb_rules_new(mk, st)
    if r == ffi.NULL:
        raise MemoryError("pycdb: out of memory")
    r = ffi.gc(r, lib.pycdb_rules_free)
    try:
        rc = 0
        for chunk in chunks:
            if chunk.__class__ is not bytes:
                chunk = bytes(chunk)
            rc = _rules_feed(r, chunk, len(chunk))
            if rc:
                break
        else:
            rc = lib.pycdb_rules_end(r)
        err = ffi.errno
        if not rc:
            return int(st.records)
        if rc == _ESYNTAX:
            line = bytes(ffi.buffer(st.line, st.linelen))
            raise RulesSyntaxError(filename, int(st.lineno), line, reason(st.code, line, st.pos))
        if rc == _ETOOBIG:
            raise TooLargeError(
                f"{filename}:{st.lineno}: a record with a {st.klen}-byte key and a "
                f"{st.dlen}-byte value would take the file past the cdb format's 4 GiB limit"
            )
        if hasattr(maker, "_broken"):
            maker._broken = True
        if rc == _ENOMEM:
            raise MemoryError("pycdb: out of memory")
        if rc == getattr(lib, "PYCDB_EDONE", None):
            raise ValueError("this cdb writer was finished, failed earlier, or is closed")
        err = err or errno.EIO
        raise OSError(err, os.strerror(err))
    finally:
        ffi.release(r)
