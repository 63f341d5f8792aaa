"""Both backends agree on every generated and corrupted file: the outcome
of opening, len(), list(items()), and get/get_all/`in` for present and
absent keys is the same value for value and exception for exception
(class, message and offset).  And every exception is CorruptError.

Hypothesis builds a record set, writes it (with each backend's Writer in
turn, which must agree with the model byte for byte), then corrupts it:
truncation, flipped bytes in the header, records or tables, crafted
words in header entries, record lengths and slots, tables with no empty
slot.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from corehelpers import (
    HASH0_KEYS,
    M32,
    backends,
    foreign,
    model_file,
    outcome,
    records,
    ref_hash,
)
from hypothesis import given
from hypothesis import strategies as st

import pycdb
from pycdb import _backend


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """This module compares the backends itself: run each test once."""
    yield None


def interesting(size: int, eod: int) -> st.SearchStrategy[int]:
    """32-bit words that sit on a boundary of this file or of the format."""
    edges = [0, 1, 7, 8, 2040, 2047, 2048, 2049, 2056]
    edges += [eod - 9, eod - 8, eod - 1, eod, eod + 1, size - 8, size - 1, size, size + 1]
    edges += [2**29 - 1, 2**29, 2**31, M32 - 8, M32 - 7, M32 - 1, M32]
    return st.one_of(st.sampled_from([e & M32 for e in edges]), st.integers(0, M32))


def layout(data: bytes) -> tuple[list[tuple[int, int]], int]:
    words = struct.unpack_from("<512I", data)
    head = [(words[2 * i], words[2 * i + 1]) for i in range(256)]
    return head, min(p for p, _ in head)


def record_starts(data: bytes, eod: int) -> list[int]:
    out, pos = [], 2048
    while pos + 8 <= eod:
        out.append(pos)
        klen, dlen = struct.unpack_from("<II", data, pos)
        pos += 8 + klen + dlen
    return out


def corrupt(data: bytes, draw, recs) -> bytes:  # type: ignore[no-untyped-def]
    buf = bytearray(data)
    head, eod = layout(data)
    size = len(data)
    starts = record_starts(data, eod)
    tables = [(i, p, n) for i, (p, n) in enumerate(head) if n]
    key_hashes = [ref_hash(k) for k, _ in recs] or [0]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["flip", "header", "record", "slot", "fill", "word", "truncate", "extend"]
            )
        )
        if kind == "flip" and len(buf):
            region = draw(st.sampled_from(["header", "records", "tables", "anywhere"]))
            lo, hi = {
                "header": (0, 2048),
                "records": (2048, eod),
                "tables": (eod, size),
                "anywhere": (0, size),
            }[region]
            hi = min(hi, len(buf))
            if lo < hi:
                pos = draw(st.integers(lo, hi - 1))
                buf[pos] ^= draw(st.integers(1, 255))
        elif kind == "header" and len(buf) >= 2048:
            entry = draw(st.integers(0, 255))
            pos = draw(interesting(size, eod))
            slots = draw(st.one_of(st.integers(0, 4), interesting(size, eod)))
            struct.pack_into("<II", buf, 8 * entry, pos, slots)
        elif kind == "record" and starts:
            at = draw(st.sampled_from(starts)) + 4 * draw(st.integers(0, 1))
            if at + 4 <= len(buf):
                struct.pack_into("<I", buf, at, draw(interesting(size, eod)))
        elif kind == "slot" and tables:
            _, tpos, n = draw(st.sampled_from(tables))
            at = tpos + 8 * draw(st.integers(0, n - 1))
            h = draw(st.one_of(st.sampled_from(key_hashes), st.integers(0, M32)))
            pos = draw(st.one_of(st.sampled_from(starts or [2048]), interesting(size, eod)))
            if at + 8 <= len(buf):
                struct.pack_into("<II", buf, at, h, pos)
        elif kind == "fill" and tables:
            # No empty slot left in one table.
            _, tpos, n = draw(st.sampled_from(tables))
            h = draw(st.one_of(st.sampled_from(key_hashes), st.integers(0, M32)))
            for j in range(n):
                at = tpos + 8 * j
                if at + 8 <= len(buf) and not struct.unpack_from("<I", buf, at + 4)[0]:
                    struct.pack_into("<II", buf, at, h, draw(st.sampled_from(starts or [1])))
        elif kind == "word" and len(buf) >= 4:
            at = 4 * draw(st.integers(0, len(buf) // 4 - 1))
            struct.pack_into("<I", buf, at, draw(interesting(size, eod)))
        elif kind == "truncate":
            del buf[draw(st.integers(0, len(buf))) :]
        elif kind == "extend":
            buf += draw(st.binary(min_size=1, max_size=64))
    return bytes(buf)


def queries(recs: list[tuple[bytes, bytes]]) -> list[bytes]:
    present = list(dict.fromkeys(k for k, _ in recs))[:12]
    absent = [b"absent", b"\x00", *HASH0_KEYS[:2]]
    return present + [k for k in absent if k not in present]


def build(name: str, recs, path) -> bytes:  # type: ignore[no-untyped-def]
    with _backend.use(name), pycdb.Writer(path) as w:
        for k, v in recs:
            w.add(k, v)
    return path.read_bytes()


@given(recs=records, data=st.data())
def test_backends_agree_on_corrupted_files(tmp_path_factory, recs, data):
    names = backends()
    sound = model_file(recs)
    d = tmp_path_factory.mktemp("agree")
    for name in names:
        assert build(name, recs, d / f"{name}.cdb") == sound, f"{name} Writer output differs"

    bad = corrupt(sound, data.draw, recs)
    q = queries(recs)
    if bad != sound:
        q.append(bad[2048:2056])
    results = {name: outcome(name, bad, q) for name in names}
    first = results[names[0]]
    for name in names[1:]:
        assert results[name] == first, f"{names[0]} and {name} disagree"
    assert not foreign(first), foreign(first)

    # The mapped file says the same as the bytes.
    path = d / "t.cdb"
    path.write_bytes(bad)

    def sig(exc: pycdb.CorruptError) -> tuple[str, tuple[str, str, object]]:
        return ("raised", ("CorruptError", str(exc).replace(str(path), "t.cdb"), exc.offset))

    for name in names:
        with _backend.use(name):
            try:
                r = pycdb.Reader(path)
            except pycdb.CorruptError as exc:
                assert first[0] == ("open", sig(exc)[1])
                continue
            assert first[0][0] != "open"
            try:
                items: object = ("ok", list(r.items()))
            except pycdb.CorruptError as exc:
                items = sig(exc)
            assert items == first[1]
            r.close()


@given(recs=records)
def test_backends_agree_on_sound_files(recs):
    names = backends()
    sound = model_file(recs)
    q = queries(recs)
    results = {name: outcome(name, sound, q) for name in names}
    assert results["cffi"] == results["pure"]
    assert not foreign(results["pure"])
