"""pycdb.Reader on sound files: the mapping API, key types, closing, and
sharing one Reader between threads, on each backend."""

from __future__ import annotations

import array
import mmap
import os
import threading
import time

import pytest
from corehelpers import HASH0_KEYS, keys, keys_in_table, model_file, records, ref_hash
from hypothesis import given

import pycdb

RECORDS = [
    (b"one", b"1"),
    (b"two", b"2"),
    (b"one", b"11"),
    (b"", b"empty key"),
    (b"empty value", b""),
    (b"one", b"111"),
    (b"\x00\xff\n", b"\x00binary\xff"),
]


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "t.cdb"
    p.write_bytes(model_file(RECORDS))
    return p


def test_lookups(path, backend):
    r = pycdb.Reader(path)
    assert r.backend == backend == pycdb.BACKEND
    assert r.name == str(path)
    assert r.get(b"one") == b"1"
    assert r[b"one"] == b"1"
    assert r.get_all(b"one") == [b"1", b"11", b"111"]
    assert r.get(b"") == b"empty key"
    assert r.get(b"empty value") == b""
    assert r[b"\x00\xff\n"] == b"\x00binary\xff"
    assert r.get(b"three") is None
    assert r.get(b"three", b"dflt") == b"dflt"
    assert r.get_all(b"three") == []
    assert b"two" in r
    assert b"empty value" in r
    assert b"three" not in r
    with pytest.raises(KeyError):
        r[b"three"]


def test_values_are_bytes(path):
    r = pycdb.Reader(path)
    assert type(r.get(b"two")) is bytes
    assert all(type(v) is bytes for v in r.get_all(b"one"))
    assert all(type(k) is bytes and type(v) is bytes for k, v in r.items())


def test_iteration_is_file_order_with_duplicates(path):
    r = pycdb.Reader(path)
    assert len(r) == len(RECORDS)
    assert list(r.items()) == RECORDS
    assert list(r.keys()) == [k for k, _ in RECORDS]
    assert list(r) == [k for k, _ in RECORDS]
    assert list(r.values()) == [v for _, v in RECORDS]
    # Iterators are independent and restartable.
    it1, it2 = r.items(), r.items()
    assert next(it1) == next(it2) == RECORDS[0]
    assert list(r.items()) == RECORDS


def test_longest_klen(path, tmp_path):
    r = pycdb.Reader(path)
    assert r.longest_klen == max(len(k) for k, _ in RECORDS)
    e = tmp_path / "e.cdb"
    e.write_bytes(model_file([]))
    assert pycdb.Reader(e).longest_klen == 0
    closed = pycdb.Reader(e)
    closed.close()
    with pytest.raises(ValueError):
        _ = closed.longest_klen


def test_empty_database(tmp_path):
    p = tmp_path / "e.cdb"
    p.write_bytes(model_file([]))
    assert os.path.getsize(p) == 2048
    r = pycdb.Reader(p)
    assert len(r) == 0
    assert list(r.items()) == []
    assert r.get(b"") is None
    assert r.get_all(b"x") == []
    assert b"" not in r


def test_hash_zero_keys(tmp_path):
    """A slot (0, pos) is full: only the position says a slot is empty."""
    assert all(ref_hash(k) == 0 for k in HASH0_KEYS)
    recs = [(k, b"v%d" % i) for i, k in enumerate(HASH0_KEYS)] + [(HASH0_KEYS[0], b"again")]
    p = tmp_path / "h.cdb"
    p.write_bytes(model_file(recs))
    r = pycdb.Reader(p)
    for i, k in enumerate(HASH0_KEYS):
        assert r[k] == b"v%d" % i
    assert r.get_all(HASH0_KEYS[0]) == [b"v0", b"again"]
    assert r.get(b"\x00") is None
    assert pycdb.hash(HASH0_KEYS[1]) == 0


def test_many_records_in_one_table(tmp_path):
    keys = keys_in_table(7, 3000)
    assert {ref_hash(k) & 255 for k in keys} == {7}
    recs = [(k, k[::-1]) for k in keys]
    p = tmp_path / "one-table.cdb"
    p.write_bytes(model_file(recs))
    r = pycdb.Reader(p)
    assert len(r) == 3000
    for k in keys:
        assert r[k] == k[::-1]
    assert r.get(keys_in_table(7, 1, prefix=b"absent")[0]) is None


@given(recs=records)
def test_agrees_with_a_dict_of_lists(tmp_path_factory, recs):
    p = tmp_path_factory.mktemp("r") / "t.cdb"
    p.write_bytes(model_file(recs))
    r = pycdb.Reader(p)
    want: dict[bytes, list[bytes]] = {}
    for k, v in recs:
        want.setdefault(k, []).append(v)
    assert len(r) == len(recs)
    assert list(r.items()) == recs
    for k, vs in want.items():
        assert r.get(k) == vs[0]
        assert r.get_all(k) == vs
        assert k in r
    for k in (b"absent", b"\x00" * 3, b"om6r8\x8e\xf6"):
        if k not in want:
            assert r.get(k) is None and r.get_all(k) == [] and k not in r


def test_from_bytes(path):
    data = path.read_bytes()
    for source in (data, bytearray(data), memoryview(data)):
        r = pycdb.Reader.from_bytes(source)
        assert r.name == "<bytes>"
        assert list(r.items()) == RECORDS
    r = pycdb.Reader.from_bytes(data, name="mine.cdb")
    assert r.name == "mine.cdb"
    # The Reader keeps its own copy.
    buf = bytearray(data)
    r = pycdb.Reader.from_bytes(buf)
    buf[:] = bytes(len(buf))
    assert r.get_all(b"one") == [b"1", b"11", b"111"]


@pytest.mark.parametrize(
    "bad", [10**12, 3000, None, "text", [0] * 2048], ids=["huge-int", "int", "None", "str", "list"]
)
def test_from_bytes_wants_bytes(bad):
    """An int must not become a zero-filled buffer of that size."""
    with pytest.raises(TypeError):
        pycdb.Reader.from_bytes(bad)


# ---- keys ---------------------------------------------------------------


@pytest.fixture
def text_reader(tmp_path):
    p = tmp_path / "s.cdb"
    p.write_bytes(model_file([("clé".encode(), b"utf8"), (b"cl\xe9", b"latin1"), (b"k", b"v")]))
    return pycdb.Reader(p)


def test_str_keys_are_utf8(text_reader):
    r = text_reader
    assert r.get("clé") == b"utf8"
    assert r["clé"] == b"utf8"
    assert r.get_all("clé") == [b"utf8"]
    assert "clé" in r
    assert "k" in r
    assert "cl\xe9".encode("latin-1") in r
    assert "absent" not in r


def test_lone_surrogate_is_unicodeencodeerror(text_reader):
    for op in (text_reader.get, text_reader.get_all, text_reader.__contains__):
        with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
            op("\udcff")


@pytest.mark.parametrize(
    "key",
    [
        bytearray(b"k"),
        memoryview(b"k"),
        memoryview(b"xkx")[1:2],
        array.array("B", b"k"),
    ],
    ids=["bytearray", "memoryview", "sliced", "array"],
)
def test_bytes_like_keys(text_reader, key):
    r = text_reader
    assert r.get(key) == b"v"
    assert r[key] == b"v"
    assert r.get_all(key) == [b"v"]
    assert key in r


def test_mmap_key(text_reader, tmp_path):
    (tmp_path / "key").write_bytes("clé".encode())
    with open(tmp_path / "key", "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    assert text_reader.get(mm) == b"utf8"
    mm.close()


def test_a_wide_buffer_is_its_bytes(tmp_path):
    words = array.array("I", [0x01020304, 5])
    p = tmp_path / "w.cdb"
    p.write_bytes(model_file([(words.tobytes(), b"raw")]))
    assert pycdb.Reader(p).get(words) == b"raw"


@pytest.mark.parametrize(
    "bad", [None, 1, 1.5, [b"k"], (b"k",), [107], {b"k": 1}, object()], ids=repr
)
def test_other_key_types_are_typeerror(text_reader, bad):
    r = text_reader
    for op in (r.get, r.get_all, r.__contains__, r.__getitem__):
        with pytest.raises(TypeError, match="^cdb keys are bytes or str, not "):
            op(bad)


# ---- closing ------------------------------------------------------------


def test_close(path):
    r = pycdb.Reader(path)
    assert not r.closed
    assert "closed" not in repr(r)
    r.close()
    assert r.closed
    assert "closed" in repr(r)
    for op in (
        lambda: r.get(b"one"),
        lambda: r.get_all(b"one"),
        lambda: r[b"one"],
        lambda: b"one" in r,
        lambda: len(r),
        lambda: list(r.items()),
        lambda: list(r.keys()),
        lambda: list(r.values()),
        lambda: list(r),
    ):
        with pytest.raises(ValueError, match="closed"):
            op()
    r.close()  # closing twice is harmless


def test_with_closes(path):
    with pycdb.Reader(path) as r:
        assert r[b"two"] == b"2"
    assert r.closed
    with pytest.raises(ValueError):
        r.get(b"two")


def test_reader_keeps_the_file_it_opened(path):
    """A Reader that opened the old file keeps answering from it after a
    Writer publishes a new one (the atomic-rename contract)."""
    r = pycdb.Reader(path)
    with pycdb.Writer(path) as w:
        w.add(b"one", b"new")
    assert r.get(b"one") == b"1"
    assert pycdb.Reader(path).get(b"one") == b"new"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        pycdb.Reader(tmp_path / "missing.cdb")
    with pytest.raises(OSError):
        pycdb.Reader(tmp_path)


def test_empty_file_is_corrupt(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(pycdb.CorruptError, match="0 bytes"):
        pycdb.Reader(tmp_path / "empty")


# ---- threads ------------------------------------------------------------


def test_threads_share_a_reader_while_it_is_closed(tmp_path, backend):
    """Several threads hammer one Reader; another closes it mid-way.  Every
    call either answers correctly or raises ValueError: no crash, no wrong
    answer, no other exception.

    The threads run until they have been told "closed" a number of times,
    not for a fixed number of calls: a thread scheduler that keeps the
    closing thread waiting must not let them finish before the close."""
    keys = [b"key%d" % i for i in range(300)]
    recs = [(k, k.upper()) for k in keys] + [(k, b"dup") for k in keys[::7]]
    p = tmp_path / "t.cdb"
    p.write_bytes(model_file(recs))
    want_all = {k: [k.upper()] + ([b"dup"] if i % 7 == 0 else []) for i, k in enumerate(keys)}
    r = pycdb.Reader(p)
    start = threading.Barrier(5)
    answers = [0] * 4
    closed_seen = [0] * 4
    after_close = 100  # calls per thread once the Reader is closed
    deadline = time.monotonic() + 60  # a close never reported fails, not hangs
    errors: list[BaseException] = []

    def hammer(n: int) -> None:
        start.wait()
        try:
            round_ = 0
            while closed_seen[n] < after_close:
                assert time.monotonic() < deadline, "the Reader never said it was closed"
                k = keys[(round_ * 31 + n) % len(keys)]
                try:
                    op = round_ % 5
                    if op == 0:
                        assert r.get(k) == k.upper()
                    elif op == 1:
                        assert r.get_all(k) == want_all[k]
                    elif op == 2:
                        assert k in r and b"nope" not in r
                    elif op == 3:
                        assert r[k] == k.upper()
                    elif round_ % 50 == 4:
                        assert list(r.items()) == recs
                    answers[n] += 1
                except ValueError as exc:
                    assert "closed" in str(exc)
                    closed_seen[n] += 1
                round_ += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    start.wait()
    while sum(answers) < 2000 and all(t.is_alive() for t in threads):
        time.sleep(0.001)
    r.close()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert sum(answers) >= 2000
    assert closed_seen == [after_close] * 4


@given(key=keys)
def test_hash_is_djbs(key, backend):
    assert pycdb.hash(key) == ref_hash(key)
    assert pycdb.hash(bytearray(key)) == pycdb.hash(memoryview(key)) == ref_hash(key)


def test_hash_of_str_is_of_its_utf8():
    assert pycdb.hash("clé") == ref_hash("clé".encode())
    with pytest.raises(TypeError, match="^cdb keys are bytes or str, not int"):
        pycdb.hash(5)  # type: ignore[arg-type]


def test_directory_is_named(tmp_path):
    """Opening a directory says which one (mmap alone would say EINVAL)."""
    with pytest.raises(IsADirectoryError) as info:
        pycdb.Reader(tmp_path)
    assert info.value.filename == str(tmp_path)
