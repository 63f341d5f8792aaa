"""The pure-Python backend: the same names and answers as ``_cffi``.

It is also the reference for diagnostics: when the C core reports a
corrupt file, the cffi backend asks this module to walk the same path
again and say exactly what is wrong, so both backends raise the same
message.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from operator import mod as _mod
from operator import rshift as _rshift
from typing import Any

from ._common import as_buffer, as_bytes
from .errors import CorruptError, TooLargeError

NAME = "pure"

_PAIR = struct.Struct("<II")
_MASK = 0xFFFFFFFF

if array("I").itemsize == 4:
    _WORD = "I"
elif array("L").itemsize == 4:  # pragma: no cover - exotic platforms
    _WORD = "L"
else:  # pragma: no cover
    raise ImportError("pycdb's pure backend needs a 32-bit array type")
_SWAP = sys.byteorder != "little"


def hash(key: bytes) -> int:  # noqa: A001 - the cdb hash, as djb names it
    """djb's cdb hash: ``h = ((h << 5) + h) ^ c`` from 5381, in 32 bits."""
    h = 5381
    if len(key) <= 32:
        # Masking once at the end gives the same low 32 bits, and short
        # keys keep the intermediate integers small.
        for c in key:
            h = h * 33 ^ c
        return h & _MASK
    for c in key:
        h = (h * 33 ^ c) & _MASK
    return h


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
    """Lookups over a mapped file whose header was already checked."""

    __slots__ = ("_buf", "_header", "_eod", "_name")

    def __init__(self, buf: bytes, header: list[tuple[int, int]], eod: int, name: str) -> None:
        self._buf = buf
        self._header = header
        self._eod = eod
        self._name = name

    def _walk(self, key: bytes) -> Iterator[tuple[int, int]]:
        """(data position, data length) of each record for key, in the
        order they were added; raises CorruptError where the walk meets
        corruption (the same conditions as ``pycdb_findnext`` in C)."""
        h = hash(key)
        table = h & 255
        hpos, hslots = self._header[table]
        if not hslots:
            return
        buf = self._buf
        eod = self._eod
        unpack = _PAIR.unpack_from
        klen = len(key)
        slot = (h >> 8) % hslots
        for _ in range(hslots):
            sh, pos = unpack(buf, hpos + 8 * slot)
            if not pos:
                return
            if sh == h:
                if pos < 2048 or pos + 8 > eod:
                    raise CorruptError(
                        f"{self._name}: corrupt cdb: slot {slot} of hash table {table} points "
                        f"at offset {pos}, outside the records (2048..{eod})",
                        offset=hpos + 8 * slot,
                    )
                rk, rd = unpack(buf, pos)
                if pos + 8 + rk + rd > eod:
                    raise CorruptError(
                        f"{self._name}: corrupt cdb: the record at offset {pos} (slot {slot} "
                        f"of hash table {table}) runs past the end of the records at {eod}",
                        offset=pos,
                    )
                if rk == klen and buf[pos + 8 : pos + 8 + klen] == key:
                    yield pos + 8 + klen, rd
            slot += 1
            if slot == hslots:
                slot = 0
        raise CorruptError(
            f"{self._name}: corrupt cdb: hash table {table} (offset {hpos}, {hslots} slots) "
            "has no empty slot",
            offset=hpos,
        )

    def locate(self, key: bytes) -> int:
        """The position of the first record for ``key`` (its header), or 0;
        raises CorruptError.  (The rules check's lookup, by the reference
        walk: only ``get`` has a hand-inlined copy of the loop.)"""
        for dpos, _dlen in self._walk(key):
            return dpos - 8 - len(key)
        return 0

    def get(self, key: bytes, default: object = None) -> object:
        # _walk's common path, inlined: this is the hot call, and a call
        # or a generator more costs a tenth of it.  Any sign of corruption
        # hands over to _walk, which names it.
        if key.__class__ is not bytes:
            key = as_bytes(key)
        h = 5381
        if len(key) <= 32:
            for c in key:
                h = h * 33 ^ c
            h &= _MASK
        else:
            h = hash(key)
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
        for dpos, dlen in self._walk(key):  # raises CorruptError
            return buf[dpos : dpos + dlen]  # pragma: no cover - _walk agrees with the above
        return default  # pragma: no cover

    def get_all(self, key: bytes) -> list[bytes]:
        if key.__class__ is not bytes:
            key = as_bytes(key)
        buf = self._buf
        return [buf[dpos : dpos + dlen] for dpos, dlen in self._walk(key)]

    def count(self) -> int:
        from ._common import iter_records

        n = 0
        for _ in iter_records(self._buf, self._eod, self._name):
            n += 1
        return n


def place(
    hashes: Sequence[int], positions: Sequence[int], slots: int
) -> tuple[list[int], list[int]]:
    """One hash table as cdbmake builds it: each record, in the order
    added, in the first empty slot from ``(hash >> 8) % slots`` on.
    Returns the slots' hashes and positions as two lists (cheaper per
    record than indexing one interleaved array; a record position is
    never 0, so 0 marks a free slot)."""
    hs = [0] * slots
    ps = [0] * slots
    starts = map(_mod, map(_rshift, hashes, repeat(8)), repeat(slots))
    for where, h, p in zip(starts, hashes, positions):
        while ps[where]:
            where += 1
            if where == slots:
                where = 0
        hs[where] = h
        ps[where] = p
    return hs, ps


class Maker:
    """Streams records to ``fd``; keeps two 32-bit words per record, in
    one array per hash table (no Python object per record)."""

    def __init__(self, fd: int, limit: int) -> None:
        os.lseek(fd, 2048, os.SEEK_SET)
        self._fd = fd
        self._limit = limit
        self._pos = 2048
        self._n = 0
        self._tables = [array(_WORD) for _ in range(256)]
        self._buf = bytearray()
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
        head = struct.pack("<512I", *header)
        done = 0
        while done < len(head):
            done += os.pwrite(self._fd, head[done:], done)

    def close(self) -> None:
        self._tables = []
        self._buf = bytearray()
        self._broken = True


# ---- rules: tcpserver's lookup order ----------------------------------


def rules_keys(ip: bytes, host: bytes | None, info: bytes | None) -> Iterator[bytes]:
    """The keys tcpserver tries, in its order (ucspi-tcp's rules());
    ``host``/``info`` are None when not known.  A key may come twice (an
    ip ending in '.', a host starting with one): tcpserver asks again,
    and so does this."""
    if info is not None:
        yield info + b"@" + ip
        if host is not None:
            yield info + b"@=" + host
    yield ip
    if host is not None:
        yield b"=" + host
    i = len(ip)
    while i > 0:
        i = ip.rfind(b".", 0, i)
        if i < 0:
            break
        yield ip[: i + 1]
    if host is not None:
        i = host.find(b".")
        while i >= 0:
            yield b"=" + host[i:]
            i = host.find(b".", i + 1)
        yield b"="
    yield b""


#: Stands for "not known" (no host, no info) in a finder's arguments.
RULES_NONE = None


def rules_find(handle: Handle, ip: bytes, host: bytes | None, info: bytes | None) -> int:
    """tcpserver's rules check on ``handle``'s file: the position of the
    deciding record, or 0 when no key has one; raises CorruptError."""
    for key in rules_keys(ip, host, info):
        pos = handle.locate(key)
        if pos:
            return pos
    return 0


def rules_finder(handle: Handle) -> Callable[[bytes, Any, Any], int]:
    """``find(ip, host, info)``, as ``_cffi.rules_finder``; it raises
    CorruptError itself, so it never returns a negative code."""
    return functools.partial(rules_find, handle)


def rules_error(handle: Handle, r: int, ip: bytes, host: Any, info: Any) -> Exception:
    """The twin of ``_cffi.rules_error``; the pure finder never needs it."""
    return AssertionError(f"pycdb: unexpected rules_find result {r}")  # pragma: no cover


# ---- rules: the tcprules compiler ------------------------------------------------


def compile_rules(chunks: Iterable[bytes], maker: Maker, filename: str) -> int:
    """Compile rules text given in chunks into ``maker``; returns the
    number of records.  The language lives in ``pycdb.rules.parse`` (the
    reference the C parser is held to); this is the same entry point
    ``_cffi`` offers."""
    from .rules.parse import compile_chunks

    if maker._broken:
        raise ValueError("this cdb writer was finished, failed earlier, or is closed")
    return compile_chunks(chunks, maker.add, filename, maker.add_many)
