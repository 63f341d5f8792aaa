import pycdb


def test_roundtrip(tmp_path, backend):
    path = tmp_path / "t.cdb"
    with pycdb.Writer(path) as w:
        w.add(b"a", b"1")
        w.add(b"a", b"2")
    r = pycdb.Reader(path)
    assert r.backend == backend == pycdb.BACKEND
    assert r.get_all(b"a") == [b"1", b"2"]
