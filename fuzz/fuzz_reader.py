"""Differential, coverage-guided fuzzing of pycdb's reader with atheris.

    python fuzz/fuzz_reader.py [libFuzzer options] CORPUS_DIR [SEED_DIR ...]

Each input is a cdb file.  It is opened with ``pycdb.Reader.from_bytes``
on the cffi backend and on the pure backend; both must show the same
outcome for opening, len(), list(items()) and get/get_all/``in`` on keys
taken from the file and from the input (same values, or the same
exception class, message and offset), and the only exception either may
raise is pycdb.CorruptError.  Any difference is a crash for the fuzzer.

Python code (pycdb's reader, _common, _pure, _cffi) is instrumented for
coverage; the C core is exercised but not instrumented here (the libFuzzer
harness cdb_read_fuzzer.c covers it with sanitizers).
"""

from __future__ import annotations

import struct
import sys
from typing import Any, Callable

import atheris

BACKENDS = ("cffi", "pure")

with atheris.instrument_imports(include=["pycdb"]):
    import pycdb
    from pycdb import _backend

    for _name in BACKENDS:
        _backend.load(_name)  # fail at start, not per input, when cffi is missing


def signature(exc: BaseException) -> tuple[str, str, Any]:
    return (type(exc).__name__, str(exc), getattr(exc, "offset", None))


def attempt(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - compared below
        return ("raised", signature(exc))


def queries(data: bytes) -> list[bytes]:
    """Keys of the first records (read leniently), the empty key, and
    slices of the input."""
    keys = [b"", data[-8:], data[len(data) // 2 : len(data) // 2 + 5]]
    if len(data) >= 2056:
        eod = min(len(data), struct.unpack_from("<I", data, 0)[0])
        pos = 2048
        while len(keys) < 12 and pos + 8 <= eod:
            klen, dlen = struct.unpack_from("<II", data, pos)
            if pos + 8 + klen > eod:
                break
            keys.append(data[pos + 8 : pos + 8 + klen])
            pos += 8 + klen + dlen
    return keys


def outcome(name: str, data: bytes, keys: list[bytes]) -> list[Any]:
    with _backend.use(name):
        try:
            r = pycdb.Reader.from_bytes(data, name="fuzz.cdb")
        except Exception as exc:  # noqa: BLE001
            return [("open", signature(exc))]
        seen = [attempt(lambda: len(r)), attempt(lambda: list(r.items()))]
        for k in keys:
            seen.append(attempt(lambda k=k: r.get(k)))  # type: ignore[misc]
            seen.append(attempt(lambda k=k: r.get_all(k)))  # type: ignore[misc]
            seen.append(attempt(lambda k=k: k in r))  # type: ignore[misc]
        return seen


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    keys = queries(data)
    cffi = outcome("cffi", data, keys)
    pure = outcome("pure", data, keys)
    if cffi != pure:
        raise AssertionError(f"backends disagree:\ncffi: {cffi!r}\npure: {pure!r}")
    for item in cffi:
        if item[0] in ("open", "raised") and item[1][0] != "CorruptError":
            raise AssertionError(f"not a CorruptError: {item!r}")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
