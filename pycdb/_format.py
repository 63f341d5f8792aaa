"""The cdb file format, in plain Python: the layout constants, the hash,
the header check, the record walk, cdbmake's slot placement, and the
reference lookup walk that names what is wrong with a damaged file.

This is the one place that knows where the bytes of a cdb are
(docs/format.md).  The backends build their fast paths on it; everything
that reads a file's structure (the reader, validation, the cdb tools)
reads it through these functions.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from typing import Any, Union

from .errors import CorruptError

#: The header: 256 (position, slots) pairs, 2048 bytes.
HEADER_SIZE = 2048
#: Largest size of a cdb file: every position must fit in 32 bits.
LIMIT = 0xFFFFFFFF
MASK = 0xFFFFFFFF

#: Two little-endian 32-bit words: a record's (klen, dlen), a slot's
#: (hash, position), a header entry's (position, slots).
PAIR = struct.Struct("<II")
HEADER = struct.Struct("<512I")

#: The array type code of an unsigned 32-bit word.
if array("I").itemsize == 4:
    WORD = "I"
elif array("L").itemsize == 4:  # pragma: no cover - exotic platforms
    WORD = "L"
else:  # pragma: no cover
    raise ImportError("pycdb needs a 32-bit array type")
#: Whether arrays of words must be byte-swapped to or from the file.
SWAP = sys.byteorder != "little"

#: What a file's bytes may be held in: bytes, or a read-only mmap.
Buffer = Union[bytes, Any]
#: The 256 header entries, (position, slots) each.
Header = list[tuple[int, int]]


def cdb_hash(key: bytes) -> int:
    """djb's cdb hash: ``h = ((h << 5) + h) ^ c`` from 5381, in 32 bits."""
    h = 5381
    if len(key) <= 32:
        # Masking once at the end gives the same low 32 bits, and short
        # keys keep the intermediate integers small.
        for c in key:
            h = h * 33 ^ c
        return h & MASK
    for c in key:
        h = (h * 33 ^ c) & MASK
    return h


def words(buf: Buffer, pos: int, count: int) -> array[int]:
    """``count`` little-endian 32-bit words from ``pos`` (unchecked)."""
    out = array(WORD, bytes(buf[pos : pos + 4 * count]))
    if SWAP:  # pragma: no cover - big-endian hosts
        out.byteswap()
    return out


def read_header(buf: Buffer) -> Header:
    """The 256 (position, slots) header entries, unchecked (the file
    must hold at least 2048 bytes)."""
    w = HEADER.unpack_from(buf, 0)
    return list(zip(w[0::2], w[1::2]))


#: The header of a 64-bit cdb (python-pure-cdb's ``Writer64``): 256
#: (position, slots) pairs of 64-bit words, 4096 bytes.
HEADER64 = struct.Struct("<512Q")
PAIR64 = struct.Struct("<QQ")
CDB64 = (
    "a 64-bit cdb (python-pure-cdb's Writer64 layout: 64-bit positions and lengths), "
    "which tcpserver, djb's tools and pycdb cannot read: they read the 32-bit format only"
)


def is_cdb64(buf: Buffer) -> bool:
    """Whether ``buf`` is a sound 64-bit cdb: every table of its 4096-byte
    header inside the file and past the header, and its records (16-byte
    lengths) filling the space up to the first table exactly.  No sound
    32-bit cdb passes this (its first table would lie past 4 GiB)."""
    size = len(buf)
    if size < HEADER64.size:
        return False
    w = HEADER64.unpack_from(buf, 0)
    for pos, slots in zip(w[0::2], w[1::2]):
        if pos < HEADER64.size or pos + 16 * slots > size:
            return False
    eod = min(w[0::2])
    pos = HEADER64.size
    unpack = PAIR64.unpack_from
    while pos + 16 <= eod:
        klen, dlen = unpack(buf, pos)
        pos += 16 + klen + dlen
    return bool(pos == eod)


def parse_header(buf: Buffer, name: str) -> tuple[Header, int]:
    """The 256 (position, slots) header entries and the end of the record
    area (the lowest table position), after checking that every table lies
    inside the file and past the header.  Raises :class:`CorruptError`,
    naming ``name`` and the offset, when one does not."""
    size = len(buf)
    if size < HEADER_SIZE:
        raise CorruptError(
            f"{name}: not a cdb file: {size} bytes, shorter than the 2048-byte header",
            offset=size,
        )
    if size > LIMIT:
        raise CorruptError(f"{name}: not a cdb file: {size} bytes, past the format's 4 GiB limit")
    header = read_header(buf)
    for i, (pos, slots) in enumerate(header):
        if (pos < HEADER_SIZE or pos + 8 * slots > size) and is_cdb64(buf):
            raise CorruptError(f"{name}: not a cdb file: {CDB64}", offset=0)
        if pos < HEADER_SIZE:
            raise CorruptError(
                f"{name}: corrupt cdb: header entry {i} (offset {8 * i}) puts hash table {i} "
                f"at {pos}, inside the header",
                offset=8 * i,
            )
        end = pos + 8 * slots
        if end > size:
            raise CorruptError(
                f"{name}: corrupt cdb: header entry {i} (offset {8 * i}) puts hash table {i} "
                f"at {pos}..{end}, past the end of the file ({size} bytes)",
                offset=8 * i,
            )
    return header, min(pos for pos, _ in header)


def records(buf: Buffer, eod: int, name: str) -> Iterator[tuple[int, int, int]]:
    """``(position, klen, dlen)`` of every record from byte 2048 to
    ``eod``, in file order: the one record walk.  Raises
    :class:`CorruptError` (its ``offset`` the record's) where a record
    runs past ``eod``, after yielding every record before it."""
    unpack = PAIR.unpack_from
    pos = HEADER_SIZE
    last = eod - 8  # the last position with room for a record's lengths
    while pos < eod:
        if pos > last:
            raise CorruptError(
                f"{name}: corrupt cdb: the record at offset {pos} runs into the hash tables "
                f"at {eod}",
                offset=pos,
            )
        klen, dlen = unpack(buf, pos)
        end = pos + 8 + klen + dlen
        if end > eod:
            raise CorruptError(
                f"{name}: corrupt cdb: the record at offset {pos} ({klen}-byte key, "
                f"{dlen}-byte data) runs into the hash tables at {eod}",
                offset=pos,
            )
        yield pos, klen, dlen
        pos = end


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
    for h, p in zip(hashes, positions):
        where = (h >> 8) % slots
        while ps[where]:
            where += 1
            if where == slots:
                where = 0
        hs[where] = h
        ps[where] = p
    return hs, ps


def lookup(
    buf: Buffer, header: Header, eod: int, name: str, key: bytes
) -> Iterator[tuple[int, int]]:
    """The reference lookup walk (docs/format.md): ``(position, dlen)``
    of each record for ``key``, in the order they were added.  Raises
    :class:`CorruptError`, naming the slot or record, where the walk
    meets what the C core calls corruption (``pycdb_findnext``): a slot
    pointing outside the record area, a record running past it, or a
    table walked all the way round without an empty slot."""
    h = cdb_hash(key)
    table = h & 255
    hpos, hslots = header[table]
    if not hslots:
        return
    unpack = PAIR.unpack_from
    klen = len(key)
    slot = (h >> 8) % hslots
    for _ in range(hslots):
        sh, pos = unpack(buf, hpos + 8 * slot)
        if not pos:
            return
        if sh == h:
            if pos < HEADER_SIZE or pos + 8 > eod:
                raise CorruptError(
                    f"{name}: corrupt cdb: slot {slot} of hash table {table} points "
                    f"at offset {pos}, outside the records (2048..{eod})",
                    offset=hpos + 8 * slot,
                )
            rk, rd = unpack(buf, pos)
            if pos + 8 + rk + rd > eod:
                raise CorruptError(
                    f"{name}: corrupt cdb: the record at offset {pos} (slot {slot} "
                    f"of hash table {table}) runs past the end of the records at {eod}",
                    offset=pos,
                )
            if rk == klen and buf[pos + 8 : pos + 8 + klen] == key:
                yield pos, rd
        slot += 1
        if slot == hslots:
            slot = 0
    raise CorruptError(
        f"{name}: corrupt cdb: hash table {table} (offset {hpos}, {hslots} slots) "
        "has no empty slot",
        offset=hpos,
    )


class Layout:
    """A mapped file whose header was checked: what a backend's handle is
    built on, and what names the damage its fast paths find.  The
    backends raise :meth:`lookup_error` or :meth:`survey_error` when their
    walk meets corruption, so both give the same message."""

    __slots__ = ("buf", "header", "eod", "name", "max_klen")

    def __init__(
        self, buf: Buffer, header: Header, eod: int, name: str, max_klen: int | None = None
    ) -> None:
        self.buf = buf
        self.header = header
        self.eod = eod
        self.name = name
        #: The longest key a lookup needs to try: a longer one is absent.
        #: At most what the record area can hold; the longest key present
        #: when a survey of the records found it.
        self.max_klen = max(0, eod - HEADER_SIZE - 8) if max_klen is None else max_klen

    def lookup(self, key: bytes) -> Iterator[tuple[int, int]]:
        """:func:`lookup` on this file; nothing for a key longer than
        ``max_klen`` (no record holds it: it is not looked up)."""
        if len(key) > self.max_klen:
            return iter(())
        return lookup(self.buf, self.header, self.eod, self.name, key)

    def lookup_error(self, key: bytes) -> CorruptError:
        """The error the walk for ``key`` meets (a backend found one)."""
        try:
            for _ in self.lookup(key):
                pass
        except CorruptError as exc:
            return exc
        return CorruptError(f"{self.name}: corrupt cdb")  # pragma: no cover - walks agree

    def survey_error(self) -> CorruptError:
        """The error the record walk meets (a backend found one)."""
        try:
            for _ in records(self.buf, self.eod, self.name):
                pass
        except CorruptError as exc:
            return exc
        return CorruptError(f"{self.name}: corrupt cdb")  # pragma: no cover - walks agree
