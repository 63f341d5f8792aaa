"""What both backends share: key conversion, the header check, and the
record walk.  Plain Python; the speed-sensitive parts live in the
backends."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Union

from .errors import CorruptError

#: Largest size of a cdb file: every position must fit in 32 bits.
LIMIT = 0xFFFFFFFF

Key = Union[bytes, bytearray, memoryview, str]

_HEADER = struct.Struct("<512I")
_PAIR = struct.Struct("<II")


def _refuse(value: object, what: str) -> TypeError:
    return TypeError(f"cdb {what}s are bytes or str, not {type(value).__name__}")


def as_bytes(value: object, what: str = "key") -> bytes:
    """Keys and values are bytes.  ``str`` is accepted and encoded as
    UTF-8 (strictly: lone surrogates raise), identically in both backends;
    any other bytes-like object (bytearray, memoryview, array, mmap: the
    buffer protocol) is copied to bytes.  Everything else, lists and ints
    included, is a TypeError: bytes(5) or cffi's list-to-array conversion
    must never turn one into a key."""
    out = as_buffer(value, what)
    return out if isinstance(out, bytes) else out.tobytes()


def as_buffer(value: object, what: str = "value") -> bytes | memoryview:
    """Like ``as_bytes``, but a contiguous buffer comes back as a flat
    byte view, uncopied: the writers check its length against the 4 GiB
    limit before a byte of it is read."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        view = memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        raise _refuse(value, what) from None
    if not view.c_contiguous:
        return view.tobytes()
    return view.cast("B")


def parse_header(buf: bytes, name: str) -> tuple[list[tuple[int, int]], int]:
    """The 256 (position, slots) header entries and the end of the record
    area (the lowest table position), after checking that every table lies
    inside the file and past the header."""
    size = len(buf)
    if size < 2048:
        raise CorruptError(
            f"{name}: not a cdb file: {size} bytes, shorter than the 2048-byte header",
            offset=size,
        )
    if size > LIMIT:
        raise CorruptError(f"{name}: not a cdb file: {size} bytes, past the format's 4 GiB limit")
    words = _HEADER.unpack_from(buf, 0)
    header = [(words[2 * i], words[2 * i + 1]) for i in range(256)]
    for i, (pos, slots) in enumerate(header):
        if pos < 2048:
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


def iter_records(buf: bytes, eod: int, name: str) -> Iterator[tuple[int, int, int, int]]:
    """(key position, key length, data position, data length) of every
    record from byte 2048 to ``eod``, in file order."""
    unpack = _PAIR.unpack_from
    pos = 2048
    while pos < eod:
        if pos + 8 > eod:
            raise CorruptError(
                f"{name}: corrupt cdb: the record at offset {pos} runs into the hash tables "
                f"at {eod}",
                offset=pos,
            )
        klen, dlen = unpack(buf, pos)
        kpos = pos + 8
        end = kpos + klen + dlen
        if end > eod:
            raise CorruptError(
                f"{name}: corrupt cdb: the record at offset {pos} ({klen}-byte key, "
                f"{dlen}-byte data) runs into the hash tables at {eod}",
                offset=pos,
            )
        yield kpos, klen, kpos + klen, dlen
        pos = end
