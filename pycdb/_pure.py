"""The pure-Python backend: the names of ``pycdb._interface``, the
same answers as the C core's, byte for byte and exception for exception.

Its lookups inline the reference walk of ``pycdb._format`` on the hot
path; wherever they meet damage they hand over to
:class:`pycdb._format.Layout`, which names it.  It has no tcprules
compiler of its own: ``pycdb.rules`` feeds :meth:`Maker.add_many` with
the reference compiler.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_right
from collections import deque
from itertools import repeat
from typing import Any, TypeVar

from ._args import as_buffer, as_bytes
from ._format import HEADER, MASK, PAIR, SWAP, WORD, Layout, cdb_hash, place, records
from ._keyorder import IPV6_WALK, rules_keys
from .errors import DialectError, TooLargeError

__all__ = ["NAME", "Handle", "Maker", "RulesCompiler", "hash", "hash_many"]

NAME = "pure"
#: No compiler of its own (see the module docstring).
RulesCompiler = None

_T = TypeVar("_T")
_MASK = MASK
_WORD = WORD
_SWAP = SWAP
_PAIR = PAIR
_MISSING: Any = object()
hash = cdb_hash  # noqa: A001 - the cdb hash, as djb names it

#: The lane arithmetic below reduces each hash to 32 bits in a 48-bit lane.
_LANE = b"\xff\xff\xff\xff\0\0"
#: _LEADING[k]: the start value that k leading NUL bytes turn into 5381
#: (33 is odd, so it has an inverse mod 2**32): keys padded on the left
#: to one width hash as if unpadded.
_LEADING = [5381 * pow(pow(33, -1, 1 << 32), k, 1 << 32) % (1 << 32) for k in range(65)]


def _lanes(seg: bytes, width: int, m: int, start: int) -> array[int]:
    """The hashes of the m keys of ``width`` bytes laid end to end in
    seg, side by side in 48-bit lanes of one big integer (``start``: the
    lanes' initial value), so Python's big-integer arithmetic runs the
    inner loop.  h*33 ^ c commutes with reduction mod 2**32, so a lane is
    masked only every third byte: 32 + 3 * 5.05 bits fit in 48."""
    mask = int.from_bytes(_LANE * m, "little")
    h = start
    lane = bytearray(6 * m)
    for p in range(width):
        lane[0::6] = seg[p::width]
        h = h * 33 ^ int.from_bytes(lane, "little")
        if p % 3 == 2:
            h &= mask
    h &= mask
    raw = h.to_bytes(6 * m, "little")
    low = bytearray(4 * m)  # the low 4 bytes of each lane
    for b in range(4):
        low[b::4] = raw[b::6]
    words = array(_WORD, bytes(low))
    if _SWAP:  # pragma: no cover - big-endian hosts
        words.byteswap()
    return words


def hash_many(keys: list[bytes]) -> list[int]:
    """djb's hash of every key, in order, for bulk adds (tcprules'
    compiler): the per-byte loop of :func:`hash` runs once per byte
    position instead of once per key (see _lanes).  Keys of similar
    lengths are padded on the left to the longest; otherwise each length
    is hashed as its own group."""
    n = len(keys)
    if n < 32:
        return [hash(k) for k in keys]
    lens = list(map(len, keys))
    width = max(lens)
    if width <= 64 and width * n <= 2 * sum(lens):
        first = array(_WORD, map(_LEADING.__getitem__, map(width.__sub__, lens)))
        if _SWAP:  # pragma: no cover - big-endian hosts
            first.byteswap()
        starts = first.tobytes()
        wide = bytearray(6 * n)
        for b in range(4):
            wide[b::6] = starts[b::4]
        padded = b"".join(map(bytes.rjust, keys, repeat(width), repeat(b"\0")))
        return _lanes(padded, width, n, int.from_bytes(wide, "little")).tolist()
    order = sorted(range(n), key=lens.__getitem__)  # stable: runs of one length
    joined = b"".join(map(keys.__getitem__, order))
    by_len = list(map(lens.__getitem__, order))
    hashed = array(_WORD)
    i = start = 0
    while i < n:
        width = by_len[i]
        j = bisect_right(by_len, width, i)
        m = j - i
        seg = joined[start : start + m * width]
        if m < 8:
            hashed.extend([hash(seg[k * width : (k + 1) * width]) for k in range(m)])
        else:
            initial = int.from_bytes(_LANE * m, "little") // _MASK * 5381
            hashed.extend(_lanes(seg, width, m, initial))
        start += m * width
        i = j
    out = [0] * n
    deque(map(out.__setitem__, order, hashed), maxlen=0)  # out[order[k]] = hashed[k]
    return out


class Handle:
    """Lookups over a mapped file whose header was checked."""

    __slots__ = ("_layout", "_buf", "_header", "_eod", "_max_klen")

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._buf = layout.buf
        self._header = layout.header
        self._eod = layout.eod
        self._max_klen = layout.max_klen

    def get(self, key: bytes, default: _T = None) -> bytes | _T:  # type: ignore[assignment]
        # The reference walk (pycdb._format.lookup), inlined: this is the
        # hot call, and a call or a generator more costs a tenth of it.
        # Any sign of damage hands over to the Layout, which names it.
        if key.__class__ is not bytes:
            key = as_bytes(key)
        if len(key) > self._max_klen:
            return default  # no record holds it (as pycdb_findfirst)
        h = 5381
        if len(key) <= 32:
            for c in key:
                h = h * 33 ^ c
            h &= _MASK
        else:
            h = cdb_hash(key)
        hpos, hslots = self._header[h & 255]
        if not hslots:
            return default
        buf = self._buf
        unpack = _PAIR.unpack_from
        slot = (h >> 8) % hslots
        klen = len(key)
        eod = self._eod
        left = hslots  # a countdown: cheaper here than a range() per call
        while left:
            sh, pos = unpack(buf, hpos + 8 * slot)
            if not pos:
                return default
            if sh == h:
                if pos < 2048 or pos + 8 > eod:
                    break
                rk, rd = unpack(buf, pos)
                end = pos + 8 + rk + rd
                if end > eod:
                    break
                if rk == klen and buf[pos + 8 : pos + 8 + klen] == key:
                    return buf[end - rd : end]
            slot += 1
            if slot == hslots:
                slot = 0
            left -= 1
        raise self._layout.lookup_error(key)

    def contains(self, key: bytes) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def getitem(self, key: bytes) -> bytes:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get_all(self, key: bytes) -> list[bytes]:
        if key.__class__ is not bytes:
            key = as_bytes(key)
        buf = self._buf
        start = 8 + len(key)
        return [buf[p + start : p + start + dlen] for p, dlen in self._layout.lookup(key)]

    def survey(self) -> tuple[int, int]:
        layout = self._layout
        n = longest = 0
        for _, klen, _ in records(layout.buf, layout.eod, layout.name):
            n += 1
            if klen > longest:
                longest = klen
        return n, longest

    def rules_find(
        self, ip: bytes, host: bytes | None, info: bytes | None
    ) -> tuple[bytes, bytes] | None:
        if 58 in ip:  # ':', as the C walk (src_c/rules_check.c)
            raise DialectError(IPV6_WALK)
        for key in rules_keys(ip, host, info, self._layout.max_klen):
            value = self.get(key, None)
            if value is not None:
                return key, value
        return None


class Maker:
    """Streams records to ``fd``, a new file at offset 0 (the header's
    place goes out as zeros first and is rewritten by :meth:`finish`);
    keeps two 32-bit words per record, in one array per hash table (no
    Python object per record)."""

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._limit = limit
        self._pos = 2048
        self._n = 0
        self._tables = [array(_WORD) for _ in range(256)]
        self._buf = bytearray(2048)
        self._broken = False

    @property
    def count(self) -> int:
        return self._n

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _spill(self) -> None:
        """Write out the buffered records; a failed write may leave part of
        a record in the file, so the maker refuses everything afterwards."""
        try:
            self._write(self._buf)
        except BaseException:
            self._broken = True
            raise
        self._buf.clear()

    def add(self, key: bytes, value: bytes) -> None:
        if self._broken:
            raise ValueError("this cdb writer was finished, failed earlier, or is closed")
        if key.__class__ is not bytes:
            key = as_buffer(key, "key")  # type: ignore[assignment]
        if value.__class__ is not bytes:
            value = as_buffer(value)  # type: ignore[assignment]
        klen = len(key)
        dlen = len(value)
        pos = self._pos
        if pos + 8 + klen + dlen + 16 * (self._n + 1) > self._limit:
            raise TooLargeError(
                f"a record with a {klen}-byte key and a {dlen}-byte value would take the "
                "file past the cdb format's 4 GiB limit"
            )
        buf = self._buf
        buf += _PAIR.pack(klen, dlen)
        buf += key
        buf += value
        if len(buf) >= 65536:
            self._spill()
        h = hash(key)
        t = self._tables[h & 255]
        t.append(h)
        t.append(pos)
        self._n += 1
        self._pos = pos + 8 + klen + dlen

    def add_many(self, keys: list[bytes], values: list[bytes]) -> None:
        """Add ``keys[i]``, ``values[i]`` in order, exactly as that many
        calls to :meth:`add` would, with the per-record work done in bulk
        (tcprules' compiler feeds whole blocks of lines).  All or
        nothing: if the last record would pass the size limit, raises
        TooLargeError before adding any (the caller then adds one at a
        time to find the record that does not fit)."""
        if self._broken:
            raise ValueError("this cdb writer was finished, failed earlier, or is closed")
        n = len(keys)
        if not n:
            return
        klens = list(map(len, keys))
        dlens = list(map(len, values))
        pos = self._pos
        total = 8 * n + sum(klens) + sum(dlens)
        if pos + total + 16 * (self._n + n) > self._limit:
            raise TooLargeError(
                f"{n} records totalling {total} bytes would take the file past the cdb "
                "format's 4 GiB limit"
            )
        hashes = hash_many(keys)
        parts: list[bytes] = [b""] * (3 * n)
        parts[0::3] = map(_PAIR.pack, klens, dlens)
        parts[1::3] = keys
        parts[2::3] = values
        buf = self._buf
        buf += b"".join(parts)
        tables = self._tables
        p = pos
        for h, k, d in zip(hashes, klens, dlens):
            t = tables[h & 255]
            t.append(h)
            t.append(p)
            p += 8 + k + d
        self._n += n
        self._pos = pos + total
        if len(buf) >= 65536:
            self._spill()

    def finish(self) -> None:
        if self._broken:
            raise ValueError("this cdb writer was finished, failed earlier, or is closed")
        self._broken = True  # a maker finishes once
        header: list[int] = []
        pos = self._pos
        out = self._buf
        for entries in self._tables:
            slots = len(entries)  # two words per record: 2 slots per record
            header += (pos, slots)
            if not slots:
                continue
            hs, ps = place(entries[0::2], entries[1::2], slots)
            tab = array(_WORD, bytes(8 * slots))
            tab[0::2] = array(_WORD, hs)
            tab[1::2] = array(_WORD, ps)
            if _SWAP:  # pragma: no cover - big-endian hosts
                tab.byteswap()
            out += tab.tobytes()
            pos += 8 * slots
            if len(out) >= 65536:
                self._write(out)
                out.clear()
        self._tables = []
        self._write(out)
        out.clear()
        head = HEADER.pack(*header)
        done = 0
        while done < len(head):
            done += os.pwrite(self._fd, head[done:], done)

    def close(self) -> None:
        self._tables = []
        self._buf = bytearray()
        self._broken = True
