"""The cffi backend, and the one module that touches the compiled core.

Everything else in pycdb reaches C through the names defined here, which
match ``_pure`` one for one.  C return codes become pycdb exceptions here
and nowhere else.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterable
from typing import Any

from ._common import as_buffer, as_bytes
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
_EDONE = lib.PYCDB_EDONE
_get = fast.pycdb_get
_findnext = fast.pycdb_findnext
_count = fast.pycdb_count
_hash = fast.pycdb_hash
_add = fast.pycdb_maker_add


def hash(key: bytes) -> int:  # noqa: A001 - the cdb hash, as djb names it
    """djb's cdb hash of ``key``."""
    return int(_hash(key, len(key)))


class Handle:
    """Lookups over a mapped file whose header was already checked.

    The struct handed to C is never written after construction, so one
    handle serves any number of threads; the buffer stays mapped for as
    long as a method of this object is running.
    """

    __slots__ = ("_buf", "_ptr", "_m", "_twin", "get")

    def __init__(self, buf: Any, header: list[tuple[int, int]], eod: int, name: str) -> None:
        self._buf = buf
        self._ptr = fast_ffi.from_buffer("unsigned char[]", buf)
        m = fast_ffi.new("pycdb_map *")
        m.base = self._ptr
        m.size = len(buf)
        m.eod = eod
        self._m = m
        # The pure walk over the same file: it names what C finds corrupt.
        self._twin = _pure.Handle(buf, header, eod, name)
        self.get = _getter(m, buf, self._twin)

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
                raise _named(self._twin, key)

    def count(self) -> int:
        n = _count(self._m)
        if n < 0:
            return self._twin.count()  # raises the CorruptError that names the record
        return int(n)


def _named(twin: _pure.Handle, key: bytes) -> CorruptError:
    """The C walk for ``key`` met corruption; the pure walk over the same
    file names it, so both backends raise the same message."""
    try:
        twin.get_all(key)
    except CorruptError as exc:
        return exc
    return CorruptError(f"{twin._name}: corrupt cdb (found by the C core)")  # pragma: no cover


def _getter(m: Any, buf: Any, twin: _pure.Handle) -> Any:
    """``Handle.get`` as a closure: everything it touches is a local, not
    a global, builtin or attribute lookup, which is measurable on a call
    of a few hundred nanoseconds.  It holds no reference to the Handle
    (no cycle: the mapping goes as soon as the last user drops it)."""

    def get(
        key: bytes,
        default: object = None,
        *,
        _get: Any = _get,
        len: Any = len,  # noqa: A002
        bytes: Any = bytes,  # noqa: A002
        as_bytes: Any = as_bytes,
    ) -> object:
        # cffi would also take a list or tuple for a char *: convert first.
        if key.__class__ is not bytes:
            key = as_bytes(key)
        r = _get(m, key, len(key))
        if r > 1:
            return buf[r & 0xFFFFFFFF : r >> 32]
        if r == 0:
            return default
        raise _named(twin, key)

    return get


def _pointer(data: bytes | memoryview) -> Any:
    """A ``char *`` for the maker's add (a GIL-keeping call)."""
    return data if data.__class__ is bytes else fast_ffi.from_buffer(data)


class Maker:
    """Streams records to ``fd`` through the C writer.

    ``add`` is a closure over the C maker and calls the GIL-keeping build
    (a record costs well under a microsecond; releasing the GIL for it
    would cost more than the work).  ``finish`` sorts and writes the
    tables with the GIL released.  The C struct refuses use after
    finish/close/failure (PYCDB_EDONE) and is freed only when this object
    goes away, so a stale ``add`` can never reach freed memory.
    """

    def __init__(self, fd: int, limit: int) -> None:
        mk = fast.pycdb_maker_new(fd, limit)
        if mk == fast_ffi.NULL:
            err = fast_ffi.errno
            if err:
                raise OSError(err, os.strerror(err))
            raise MemoryError("pycdb: out of memory")
        mk = fast_ffi.gc(mk, fast.pycdb_maker_free)
        self._mk = mk
        # The same struct, typed for the GIL-releasing module.
        self._mk_io = ffi.cast("pycdb_maker *", int(fast_ffi.cast("uintptr_t", mk)))
        self.add = self._adder(mk)

    @staticmethod
    def _adder(mk: Any) -> Any:
        def add(
            key: bytes,
            value: bytes,
            *,
            _add: Any = _add,
            len: Any = len,  # noqa: A002
            bytes: Any = bytes,  # noqa: A002
        ) -> None:
            # Locals, not globals or builtins, on the hot path (as in get).
            if key.__class__ is bytes and value.__class__ is bytes:
                r = _add(mk, key, len(key), value, len(value))
            else:
                # Anything else goes through the buffer protocol, uncopied:
                # a huge buffer is measured before it is read.  (cffi alone
                # would also take a list or tuple for a char *.)
                key = as_buffer(key, "key")  # type: ignore[assignment]
                value = as_buffer(value)  # type: ignore[assignment]
                r = _add(mk, _pointer(key), len(key), _pointer(value), len(value))
            if r:
                _fail(r, fast_ffi.errno, len(key), len(value))

        return add

    @property
    def count(self) -> int:
        # Valid after finish and close too: the struct lives as long as we do.
        return int(fast.pycdb_maker_count(self._mk))

    def finish(self) -> None:
        r = lib.pycdb_maker_finish(self._mk_io)
        if r:
            _fail(r, ffi.errno, 0, 0)

    def close(self) -> None:
        fast.pycdb_maker_close(self._mk)


def _fail(r: int, err: int, klen: int, dlen: int) -> None:
    """Raise the exception for a maker's return code ``r``."""
    if r == _ETOOBIG:
        raise TooLargeError(
            f"a record with a {klen}-byte key and a {dlen}-byte value would take the "
            "file past the cdb format's 4 GiB limit"
        )
    if r == _EDONE:
        raise ValueError("this cdb writer was finished, failed earlier, or is closed")
    if r == _ENOMEM:
        raise MemoryError("pycdb: out of memory")
    err = err or errno.EIO
    raise OSError(err, os.strerror(err))


# ---- rules: tcpserver's lookup order ----------------------------------
#
# One C call walks the whole key sequence (pycdb_rules_find) and returns
# the deciding record's position; pycdb.rules.check reads the key and
# data from the mapping there.  The finder is the C function itself with
# the map bound (no Python frame of its own), so the caller passes
# RULES_NONE for an unknown host or info and hands a negative result to
# rules_error, which turns the C code into the exception.

#: Stands for "not known" (no host, no info) in a finder's arguments.
RULES_NONE = fast_ffi.NULL


def rules_finder(handle: Handle) -> Callable[[bytes, Any, Any], int]:
    """``find(ip, host, info)``: tcpserver's rules check on ``handle``'s
    file, ``host``/``info`` being bytes or RULES_NONE, none holding a NUL
    (C strings, as tcpserver has them).  Returns the position of the
    deciding record (>= 2048: its header, key and data lie inside the
    record area), 0 when no key has one, or a negative code for
    ``rules_error``.  Valid while ``handle`` lives: the caller keeps it."""
    return functools.partial(fast.pycdb_rules_find, handle._m)


def rules_error(handle: Handle, r: int, ip: bytes, host: Any, info: Any) -> Exception:
    """The exception for a finder's negative result ``r``."""
    if r == _ENOMEM:
        return MemoryError("pycdb: out of memory")
    # The C walk met corruption; the pure walk over the same keys names it.
    twin = handle._twin
    try:
        _pure.rules_find(
            twin, ip, None if host is RULES_NONE else host, None if info is RULES_NONE else info
        )
    except CorruptError as exc:
        return exc
    return CorruptError(f"{twin._name}: corrupt cdb (found by the C core)")  # pragma: no cover


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

    st = ffi.new("pycdb_rules_status *")
    # The maker struct as this (GIL-releasing) module's lib sees it; a
    # finished or failed maker refuses the records with PYCDB_EDONE.
    r = lib.pycdb_rules_new(maker._mk_io, st)
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
        _fail(rc, err, 0, 0)
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        ffi.release(r)


# ---- validate: hashing in bulk ---------------------------------------------------


def hash_many(keys: list[bytes]) -> list[int]:
    """djb's hash of every key, in order (pycdb.validate hashes every
    record's key): one C call per key, without a Python frame for each."""
    return list(map(_hash, keys, map(len, keys)))
