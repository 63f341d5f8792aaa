"""Shared pieces of the core tests (reader, writer, hostile files,
differential runs): an independent model of the cdb format, hypothesis
strategies for record sets, and the comparison of both backends.

The model here is written from docs/format.md §1-§7, not from pycdb's
code, so a test that compares pycdb with it compares two implementations.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any, Callable

from helpers import unavailable
from hypothesis import strategies as st

import pycdb
from pycdb import _backend

Record = tuple[bytes, bytes]

M32 = 0xFFFFFFFF


def ref_hash(key: bytes) -> int:
    """djb's hash, spelled out independently of both backends."""
    h = 5381
    for c in key:
        h = ((h << 5) + h) & M32 ^ c
    return h


#: Keys whose cdb hash is 0 (found once by a meet-in-the-middle search;
#: the tests check ref_hash() of each before relying on it).  A slot for
#: such a key is (0, position): it must not be mistaken for an empty one.
HASH0_KEYS = [
    b"om6r8\x8e\xf5",
    b"epjeq\x8a\xe4",
    b"ootpt@\xf5",
    b"7bafiE\xfb",
    b"vpbze\x13\xed",
    b"vpbzd2\xed",
]


def keys_in_table(table: int, n: int, prefix: bytes = b"k") -> list[bytes]:
    """``n`` distinct keys that all land in hash table ``table``: the
    last byte of each is chosen so that ``hash & 255 == table``."""
    out = []
    for i in range(n):
        stem = prefix + str(i).encode()
        h = ref_hash(stem)
        last = ((h * 33) & 255) ^ table
        out.append(stem + bytes([last]))
    return out


def cdbmake_input(records: Iterable[Record]) -> bytes:
    """Records in the ``+klen,dlen:key->data`` format that cdbmake reads,
    ended by the empty line."""
    parts = [b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v) for k, v in records]
    parts.append(b"\n")
    return b"".join(parts)


def model_file(records: Sequence[Record], *, wide: bool = False) -> bytes:
    """The cdb file djb's cdbmake writes for ``records`` (docs/format.md §5,
    §6); ``wide``: the same layout in 64-bit words (python-pure-cdb's
    Writer64: a 4096-byte header, 16-byte lengths and slots)."""
    pair = "<QQ" if wide else "<II"
    out = bytearray(256 * struct.calcsize(pair))
    entries: list[list[tuple[int, int]]] = [[] for _ in range(256)]
    for k, v in records:
        h = ref_hash(k)
        entries[h & 255].append((h, len(out)))
        out += struct.pack(pair, len(k), len(v)) + k + v
    header = []
    for table in entries:
        slots = 2 * len(table)
        header.append((len(out), slots))
        cells = [(0, 0)] * slots
        for h, pos in table:
            where = (h >> 8) % slots
            while cells[where][1]:
                where = (where + 1) % slots
            cells[where] = (h, pos)
        for h, pos in cells:
            out += struct.pack(pair, h, pos)
    for i, (pos, slots) in enumerate(header):
        struct.pack_into(pair, out, struct.calcsize(pair) * i, pos, slots)
    return bytes(out)


# ---- hypothesis strategies ---------------------------------------------

#: Keys: mostly short (so duplicates and shared tables are common), some
#: longer, some with hash 0, the empty key among them.
keys = st.one_of(
    st.binary(max_size=2),
    st.binary(min_size=3, max_size=40),
    st.sampled_from(HASH0_KEYS),
)
values = st.one_of(st.binary(max_size=8), st.binary(max_size=200))
records = st.lists(st.tuples(keys, values), max_size=40)


# ---- both backends ------------------------------------------------------


def backends() -> list[str]:
    """The backends to compare.  Without the cffi backend a comparison is
    meaningless: skipped locally, a failure in CI."""
    names = _backend.available()
    if "cffi" not in names:
        problem = _backend._errors.get("cffi", "it did not import")
        unavailable(f"the cffi backend is not loaded: {problem}")
    return names


def signature(exc: BaseException) -> tuple[str, str, Any]:
    """What must be identical when both backends fail: class, message,
    offset."""
    return (type(exc).__name__, str(exc), getattr(exc, "offset", None))


def attempt(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return ("raised", signature(exc))


def outcome(name: str, data: bytes, queries: Sequence[bytes]) -> list[Any]:
    """Everything a user can observe of ``data`` through backend ``name``:
    opening, len(), list(items()), and get/get_all/in for each query."""
    with _backend.use(name):
        try:
            r = pycdb.Reader.from_bytes(data, name="t.cdb")
        except Exception as exc:  # noqa: BLE001
            return [("open", signature(exc))]
        assert r.backend == name
        seen: list[Any] = [
            attempt(lambda: len(r)),
            attempt(lambda: list(r.items())),
        ]
        for q in queries:
            seen.append(attempt(lambda q=q: r.get(q)))  # type: ignore[misc]
            seen.append(attempt(lambda q=q: r.get_all(q)))  # type: ignore[misc]
            seen.append(attempt(lambda q=q: q in r))  # type: ignore[misc]
        return seen


def foreign(seen: list[Any]) -> list[Any]:
    """The failures in an outcome that are not CorruptError."""
    bad = []
    for item in seen:
        if item[0] in ("open", "raised") and item[1][0] != "CorruptError":
            bad.append(item)
    return bad


def parse_cdbmake(data: bytes) -> list[Record]:
    """The records of a cdbmake input (the inverse of cdbmake_input)."""
    out = []
    pos = 0
    while data[pos : pos + 1] == b"+":
        comma = data.index(b",", pos)
        colon = data.index(b":", comma)
        klen, dlen = int(data[pos + 1 : comma]), int(data[comma + 1 : colon])
        key = data[colon + 1 : colon + 1 + klen]
        arrow = colon + 1 + klen
        assert data[arrow : arrow + 2] == b"->"
        value = data[arrow + 2 : arrow + 2 + dlen]
        assert data[arrow + 2 + dlen : arrow + 3 + dlen] == b"\n"
        out.append((key, value))
        pos = arrow + 3 + dlen
    assert data[pos:] == b"\n", "cdbmake input ends with an empty line"
    return out


def limited(limit: int) -> type[pycdb.Writer]:
    """A Writer whose files may not pass ``limit`` bytes (the format's is
    4 GiB, too big to reach in a test)."""
    return type("LimitedWriter", (pycdb.Writer,), {"_limit": limit})
