"""The cffi backend: the names of ``pycdb._interface`` over the C core,
and the one module that touches the compiled module ``pycdb._cdb``.

C return codes become pycdb's exceptions here and nowhere else; damage
the C walks find is named by :class:`pycdb._format.Layout`, so both
backends raise the same message.  Every call keeps the GIL except
finishing a file and compiling rules, which release it (see pycdb.h,
"Python glue").
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable, TypeVar

from ._args import as_buffer, as_bytes
from ._format import PAIR, Layout
from ._interface import MakerAPI, SyntaxErrorFactory
from ._keyorder import IPV6_WALK, rules_keys
from ._version import __version__
from .errors import DialectError, TooLargeError

try:
    from ._cdb import ffi, lib
except ImportError as exc:  # pragma: no cover - exercised by the backend tests
    import os.path

    _here = os.path.dirname(os.path.abspath(__file__))
    _top = os.path.dirname(_here)
    if os.path.exists(os.path.join(_top, "pyproject.toml")) and os.path.isdir(
        os.path.join(_top, "src_c")
    ):
        _advice = (
            f"this pycdb is the unbuilt source tree in {_top} (Python looks in the current "
            "directory first): run from another directory, build it in place "
            "(pip install -e .), or use PYCDB_BACKEND=pure."
        )
    else:
        _advice = "reinstall pycdb with a C compiler present, or use PYCDB_BACKEND=pure."
    raise ImportError(f"pycdb's C extension is not available ({exc}): {_advice}") from exc

_built = ffi.string(lib.pycdb_version()).decode()
if _built != __version__:  # pragma: no cover - a stale in-place build
    raise ImportError(
        f"pycdb's C extension was built for pycdb {_built}, but this is pycdb "
        f"{__version__}; rebuild it (pip install .)"
    )

__all__ = ["NAME", "Handle", "Maker", "RulesCompiler", "hash", "hash_many"]

NAME = "cffi"
_T = TypeVar("_T")

_NULL = ffi.NULL
_ECORRUPT = lib.PYCDB_ECORRUPT
_ETOOBIG = lib.PYCDB_ETOOBIG
_ENOMEM = lib.PYCDB_ENOMEM
_EDONE = lib.PYCDB_EDONE
_EBUSY = lib.PYCDB_EBUSY
_EIPV6 = lib.PYCDB_EIPV6
_ESYNTAX = lib.PYCDB_ESYNTAX
_hash = lib.pycdb_hash
_pair = PAIR.unpack_from


def hash(key: bytes) -> int:  # noqa: A001 - the cdb hash, as djb names it
    """djb's cdb hash of ``key``."""
    return int(_hash(key, len(key)))


def hash_many(keys: list[bytes]) -> list[int]:
    """djb's hash of every key, in order: one C call per key, without a
    Python frame for each."""
    return list(map(_hash, keys, map(len, keys)))


def _lookups(
    m: Any, buf: Any, layout: Layout
) -> tuple[Callable[..., Any], Callable[[bytes], bool], Callable[[bytes], bytes]]:
    """``Handle.get``, ``contains`` and ``getitem`` as closures, each one
    C call (``pycdb_get``: 0 absent, 1 damaged, else the data's end and
    start packed in 64 bits).  Everything they touch is a cell of this
    frame rather than a global, builtin or attribute lookup, which is
    measurable on a call of a few hundred nanoseconds, and the miss, the
    commonest answer, is tested first.  They hold no reference to the
    Handle (no cycle: the mapping goes as soon as the last user drops
    it)."""
    find = lib.pycdb_get
    _bytes = bytes
    _len = len
    _as_bytes = as_bytes

    def get(key: bytes, default: Any = None) -> Any:
        # cffi would also take a list or tuple for a char *: convert first.
        if key.__class__ is not _bytes:
            key = _as_bytes(key)
        r = find(m, key, _len(key))
        if not r:
            return default
        if r != 1:
            return buf[r & 0xFFFFFFFF : r >> 32]
        raise layout.lookup_error(key)

    def contains(key: bytes) -> bool:
        if key.__class__ is not _bytes:
            key = _as_bytes(key)
        r = find(m, key, _len(key))
        if r != 1:
            return r != 0  # type: ignore[no-any-return]
        raise layout.lookup_error(key)

    def getitem(key: bytes) -> bytes:
        if key.__class__ is not _bytes:
            key = _as_bytes(key)
        r = find(m, key, _len(key))
        if not r:
            raise KeyError(key)
        if r != 1:
            return buf[r & 0xFFFFFFFF : r >> 32]  # type: ignore[no-any-return]
        raise layout.lookup_error(key)

    return get, contains, getitem


class Handle:
    """Lookups over a mapped file whose header was checked.

    The struct handed to C is never written after construction, so one
    handle serves any number of threads; the buffer stays mapped for as
    long as this object, or the ``get`` taken from it, lives.
    """

    __slots__ = ("_layout", "_buf", "_ptr", "_m", "get", "contains", "getitem", "rules_find")

    # One C call each, closures made per handle (see _lookups).
    get: Callable[..., Any]
    contains: Callable[[bytes], bool]
    getitem: Callable[[bytes], bytes]
    rules_find: Callable[[bytes, Any, Any], tuple[bytes, bytes] | None]

    def __init__(self, layout: Layout) -> None:
        buf = layout.buf
        self._layout = layout
        self._buf = buf
        self._ptr = ffi.from_buffer("unsigned char[]", buf)
        m = ffi.new("pycdb_map *")
        m.base = self._ptr
        m.size = len(buf)
        m.eod = layout.eod
        m.maxklen = layout.max_klen
        self._m = m
        self.get, self.contains, self.getitem = _lookups(m, buf, layout)
        self.rules_find = _rules_finder(m, buf, layout)

    def get_all(self, key: bytes) -> list[bytes]:
        if key.__class__ is not bytes:
            key = as_bytes(key)
        f = ffi.new("pycdb_find *")
        buf = self._buf
        out = []
        while True:
            r = lib.pycdb_findnext(self._m, f, key, len(key))
            if r == 1:
                out.append(buf[f.dpos : f.dpos + f.dlen])
            elif r == 0:
                return out
            else:
                raise self._layout.lookup_error(key)

    def survey(self) -> tuple[int, int]:
        longest = ffi.new("uint32_t *")
        n = lib.pycdb_survey(self._m, longest)
        if n < 0:
            raise self._layout.survey_error()
        return int(n), int(longest[0])


def _rules_finder(
    m: Any, buf: Any, layout: Layout
) -> Callable[[bytes, Any, Any], tuple[bytes, bytes] | None]:
    """``Handle.rules_find`` as a closure (see ``_lookups``): one C call
    for the whole key walk (``pycdb_rules_find``: the deciding record's
    position, 0 for none, or a code), then the key and data sliced from
    the mapping."""
    find = lib.pycdb_rules_find
    pair = _pair
    null = _NULL

    def rules_find(ip: bytes, host: bytes | None, info: bytes | None) -> tuple[bytes, bytes] | None:
        pos = find(m, ip, null if host is None else host, null if info is None else info)
        if pos > 0:
            klen, dlen = pair(buf, pos)
            k = pos + 8
            d = k + klen
            return buf[k:d], buf[d : d + dlen]
        if pos == 0:
            return None
        if pos == _EIPV6:
            raise DialectError(IPV6_WALK)
        if pos == _ENOMEM:
            raise MemoryError("pycdb: out of memory")
        # A walk met damage: the first key whose walk does names it.
        get = lib.pycdb_get
        for key in rules_keys(ip, host, info, layout.max_klen):
            if get(m, key, len(key)) == 1:
                raise layout.lookup_error(key)
        raise layout.lookup_error(b"")  # pragma: no cover - the walks agree

    return rules_find


def _raise(r: int, mk: Any, klen: int = 0, dlen: int = 0) -> None:
    """Raise the exception for a maker's nonzero return code ``r``."""
    if r == _ETOOBIG:
        raise TooLargeError(
            f"a record with a {klen}-byte key and a {dlen}-byte value would take the "
            "file past the cdb format's 4 GiB limit"
        )
    if r == _EDONE:
        raise ValueError("this cdb writer was finished, failed earlier, or is closed")
    if r == _EBUSY:
        raise ValueError("this cdb writer is in use by another thread (finishing or compiling)")
    if r == _ENOMEM:
        raise MemoryError("pycdb: out of memory")
    err = lib.pycdb_maker_error(mk) or errno.EIO
    raise OSError(err, os.strerror(err))


def _pointer(data: bytes | memoryview) -> Any:
    """A ``char *`` for the maker's add."""
    return data if data.__class__ is bytes else ffi.from_buffer(data)


def _adder(mk: Any) -> Callable[[bytes, bytes], None]:
    """``Maker.add`` as a closure (see ``_getter``)."""
    put = lib.pycdb_maker_add
    _bytes = bytes
    _len = len

    def add(key: bytes, value: bytes) -> None:
        if key.__class__ is _bytes and value.__class__ is _bytes:
            r = put(mk, key, _len(key), value, _len(value))
        else:
            # Anything else goes through the buffer protocol, uncopied:
            # a huge buffer is measured before it is read.  (cffi alone
            # would also take a list or tuple for a char *.)
            k = as_buffer(key, "key")
            v = as_buffer(value)
            r = put(mk, _pointer(k), _len(k), _pointer(v), _len(v))
            key, value = k, v  # type: ignore[assignment]
        if r:
            _raise(r, mk, _len(key), _len(value))

    return add


class Maker:
    """Streams records to ``fd`` (a new file at offset 0) through the C
    writer.  The C struct refuses use after finish, close or a failure
    (PYCDB_EDONE), and while another thread finishes or compiles into it
    (PYCDB_EBUSY); it is freed only when this object goes, so a stale
    ``add`` can never reach freed memory."""

    __slots__ = ("_mk", "add")

    add: Callable[[bytes, bytes], None]

    def __init__(self, fd: int, limit: int) -> None:
        mk = lib.pycdb_maker_new(fd, limit)
        if mk == _NULL:
            raise MemoryError("pycdb: out of memory")
        self._mk = ffi.gc(mk, lib.pycdb_maker_free)
        self.add = _adder(self._mk)

    def add_many(self, keys: list[bytes], values: list[bytes]) -> None:
        n = len(keys)
        total = 8 * n + sum(map(len, keys)) + sum(map(len, values))
        if not lib.pycdb_maker_fits(self._mk, total, n):
            raise TooLargeError(
                f"{n} records totalling {total} bytes would take the file past the cdb "
                "format's 4 GiB limit"
            )
        add = self.add
        for key, value in zip(keys, values):
            add(key, value)

    @property
    def count(self) -> int:
        # Valid after finish and close too: the struct lives as long as we do.
        return int(lib.pycdb_maker_count(self._mk))

    def finish(self) -> None:
        r = lib.pycdb_py_maker_finish(self._mk)
        if r:
            _raise(r, self._mk)

    def close(self) -> None:
        r = lib.pycdb_maker_close(self._mk)
        if r:
            _raise(r, self._mk)


class RulesCompiler:
    """tcprules' compiler in C (``src_c/rules_parse.c``): each chunk is
    parsed and its records added to the maker in one call, with the GIL
    released and the maker claimed, so no Python runs per line."""

    __slots__ = ("_maker", "_st", "_r", "_error")

    def __init__(self, maker: MakerAPI, error: SyntaxErrorFactory) -> None:
        if not isinstance(maker, Maker):
            raise TypeError("the C compiler feeds the C maker only")
        self._maker = maker  # outlives the compiler, which adds to it
        self._st = ffi.new("pycdb_rules_status *")
        r = lib.pycdb_rules_new(maker._mk, self._st)
        if r == _NULL:
            raise MemoryError("pycdb: out of memory")
        self._r = ffi.gc(r, lib.pycdb_rules_free)
        self._error = error

    def _fail(self, rc: int) -> None:
        st = self._st
        if rc == _ESYNTAX:
            line = bytes(ffi.buffer(st.line, st.linelen))
            raise self._error(int(st.lineno), line, int(st.code), int(st.pos))
        _raise(rc, self._maker._mk, int(st.klen), int(st.dlen))

    def feed(self, chunk: bytes) -> None:
        if chunk.__class__ is not bytes:
            chunk = bytes(chunk)
        rc = lib.pycdb_py_rules_feed(self._r, chunk, len(chunk))
        if rc:
            self._fail(rc)

    def end(self) -> int:
        rc = lib.pycdb_py_rules_end(self._r)
        if rc:
            self._fail(rc)
        return int(self._st.records)

    def line(self) -> int:
        return int(self._st.lineno)

    def skipped(self) -> tuple[int, list[int]]:
        st = self._st
        count = int(st.skipped)
        return count, [int(n) for n in st.skipped_at[0 : min(count, len(st.skipped_at))]]
