"""Keys and values as the backends take them: bytes, from whatever the
public API accepts."""

from __future__ import annotations

from typing import Union

#: What the public API accepts as a key or a value.
Key = Union[bytes, bytearray, memoryview, str]


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
