"""pycdb.Writer: the publishing protocol, file modes, the 4 GiB limit and
argument handling, on each backend.  (Byte identity with cdbmake lives in
test_differential_core.py; memory use in test_writer_memory.py.)"""

from __future__ import annotations

import mmap
import os
import stat
import subprocess
import textwrap

import pytest
from corehelpers import limited, model_file
from helpers import child_env, python, run_measured, run_ref

import pycdb

RECORDS = [(b"one", b"1"), (b"two", b"22"), (b"one", b"111")]


def write(path, records=RECORDS, limit=None, **kwargs):
    with (pycdb.Writer if limit is None else limited(limit))(path, **kwargs) as w:
        for k, v in records:
            w.add(k, v)
    return w


def entries(directory) -> set[str]:
    return set(os.listdir(directory))


# ---- publishing ---------------------------------------------------------


def test_with_commits_and_leaves_no_temp(tmp_path):
    target = tmp_path / "t.cdb"
    write(target)
    assert entries(tmp_path) == {"t.cdb"}
    assert target.read_bytes() == model_file(RECORDS)


def test_records_stream_to_an_unnamed_file_in_the_same_directory(tmp_path, backend):
    """Linux: the file has no name until commit (O_TMPFILE), so nothing
    is ever seen half-written and a killed process leaves nothing."""
    target = tmp_path / "t.cdb"
    w = pycdb.Writer(target)
    assert w.backend == backend and w.tmp_path is None
    assert not target.exists()
    # Enough bytes to get past any write buffer: they must be on disk.
    w.add(b"k", b"v" * 200_000)
    st = os.fstat(w._fd)
    assert st.st_size >= 200_000 and st.st_nlink == 0
    assert st.st_dev == tmp_path.stat().st_dev
    assert entries(tmp_path) == set()
    w.commit()
    assert entries(tmp_path) == {"t.cdb"}


def test_commit_fsyncs_file_then_renames_then_fsyncs_directory(tmp_path, monkeypatch):
    target = tmp_path / "t.cdb"
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind + ":" + os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def rename(src, dst):
        events.append(("rename", f"{src}->{dst}"))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    w = pycdb.Writer(target, tmp_path=tmp_path / "t.tmp")
    w.add(b"k", b"v")
    w.commit()
    assert events == [
        ("fsync", f"file:{tmp_path}/#{target.stat().st_ino} (deleted)"),  # O_TMPFILE
        ("rename", f"{tmp_path}/t.tmp->{target}"),
        ("fsync", f"dir:{tmp_path}"),
    ]


@pytest.mark.parametrize("existing", [None, b"old contents"])
def test_exception_in_with_removes_temp_and_keeps_target(tmp_path, existing):
    target = tmp_path / "t.cdb"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(RuntimeError, match="boom"), pycdb.Writer(target) as w:
        w.add(b"k", b"v")
        raise RuntimeError("boom")
    assert entries(tmp_path) == ({"t.cdb"} if existing is not None else set())
    if existing is not None:
        assert target.read_bytes() == existing


def test_commit_and_abort_without_with(tmp_path):
    target = tmp_path / "t.cdb"
    w = pycdb.Writer(target)
    w.add(b"a", b"1")
    w.commit()
    assert pycdb.Reader(target)[b"a"] == b"1"

    w = pycdb.Writer(target)
    w.add(b"a", b"2")
    w.abort()
    assert entries(tmp_path) == {"t.cdb"}
    assert pycdb.Reader(target)[b"a"] == b"1"


def test_finished_writer_refuses_more(tmp_path):
    w = pycdb.Writer(tmp_path / "t.cdb")
    w.add(b"a", b"1")
    w.commit()
    with pytest.raises(ValueError, match="already committed or aborted"):
        w.add(b"b", b"2")
    with pytest.raises(ValueError, match="already committed or aborted"):
        w.commit()
    w.abort()  # a no-op once committed
    assert pycdb.Reader(tmp_path / "t.cdb").get_all(b"a") == [b"1"]

    w = pycdb.Writer(tmp_path / "u.cdb")
    w.abort()
    with pytest.raises(ValueError):
        w.commit()
    with pytest.raises(ValueError):
        w.add(b"a", b"1")
    assert entries(tmp_path) == {"t.cdb"}


def test_len_counts_records_and_survives_commit(tmp_path):
    w = pycdb.Writer(tmp_path / "t.cdb")
    assert len(w) == 0
    for k, v in RECORDS:
        w.add(k, v)
    assert len(w) == 3
    w.commit()
    assert len(w) == 3


def test_dropped_writer_leaves_nothing(tmp_path):
    w = pycdb.Writer(tmp_path / "t.cdb")
    w.add(b"a", b"1")
    del w
    assert entries(tmp_path) == set()


def test_tmp_path_is_honoured(tmp_path):
    target = tmp_path / "t.cdb"
    tmp = tmp_path / "t.tmp"
    tmp.write_bytes(b"\0" * 2048 + b"stale temp from an earlier run")
    w = pycdb.Writer(target, tmp_path=tmp)
    assert w.tmp_path == str(tmp)
    w.add(b"k", b"v")
    assert entries(tmp_path) == {"t.tmp"}
    w.commit()
    assert entries(tmp_path) == {"t.cdb"}
    assert target.read_bytes() == model_file([(b"k", b"v")])

    with pytest.raises(KeyError), pycdb.Writer(target, tmp_path=tmp) as w:
        raise KeyError("x")
    assert entries(tmp_path) == {"t.cdb"}


def test_missing_directory_is_an_oserror_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        pycdb.Writer(tmp_path / "no" / "t.cdb")
    assert entries(tmp_path) == set()


def test_failed_rename_removes_temp(tmp_path):
    target = tmp_path / "t.cdb"
    target.mkdir()
    (target / "inside").write_bytes(b"")
    w = pycdb.Writer(target)
    w.add(b"k", b"v")
    with pytest.raises(OSError):
        w.commit()
    assert entries(tmp_path) == {"t.cdb"}
    assert os.listdir(target) == ["inside"]


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o077, 0o027])
@pytest.mark.parametrize("explicit_tmp", [False, True])
def test_mode_is_what_cdbmake_gives(tmp_path, umask, explicit_tmp):
    """cdbmake creates its temporary file with mode 0644 minus the umask
    and renames it: the published file has that mode."""
    old = os.umask(umask)
    try:
        run_ref("cdbmake", str(tmp_path / "ref.cdb"), str(tmp_path / "ref.tmp"), input=b"\n")
        kwargs = {"tmp_path": tmp_path / "t.tmp"} if explicit_tmp else {}
        write(tmp_path / "t.cdb", **kwargs)
    finally:
        os.umask(old)
    want = stat.S_IMODE(os.stat(tmp_path / "ref.cdb").st_mode)
    assert want == 0o644 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "t.cdb").st_mode) == want


# ---- arguments ----------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [bytearray(b"key"), memoryview(b"key"), memoryview(b"xkeyx")[1:4], "key"],
    ids=["bytearray", "memoryview", "sliced-memoryview", "str"],
)
def test_bytes_like_and_str_keys_and_values(tmp_path, key):
    write(tmp_path / "t.cdb", [(key, key)])
    assert (tmp_path / "t.cdb").read_bytes() == model_file([(b"key", b"key")])


def test_array_and_mmap_are_bytes_like(tmp_path):
    import array

    with open(tmp_path / "src", "wb") as f:
        f.write(b"mapped")
    with open(tmp_path / "src", "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    words = array.array("I", [1, 2])
    write(tmp_path / "t.cdb", [(mm, words), (words, mm)])
    raw = words.tobytes()
    assert (tmp_path / "t.cdb").read_bytes() == model_file([(b"mapped", raw), (raw, b"mapped")])
    mm.close()


def test_str_is_utf8(tmp_path):
    write(tmp_path / "t.cdb", [("clé", "välue ☃")])
    expected = model_file([("clé".encode(), "välue ☃".encode())])
    assert (tmp_path / "t.cdb").read_bytes() == expected


def test_lone_surrogate_is_refused_before_anything_is_written(tmp_path):
    w = pycdb.Writer(tmp_path / "t.cdb")
    with pytest.raises(UnicodeEncodeError):
        w.add("\ud800", b"v")
    with pytest.raises(UnicodeEncodeError):
        w.add(b"k", "\udfff")
    assert len(w) == 0
    w.add(b"k", b"v")
    w.commit()
    assert (tmp_path / "t.cdb").read_bytes() == model_file([(b"k", b"v")])


@pytest.mark.parametrize(
    "bad", [None, 1, 1.5, [b"k"], (b"k",), [107], {b"k": b"v"}, object()], ids=repr
)
def test_other_types_are_a_typeerror(tmp_path, bad):
    w = pycdb.Writer(tmp_path / "t.cdb")
    with pytest.raises(TypeError, match="^cdb keys are bytes or str, not "):
        w.add(bad, b"v")
    with pytest.raises(TypeError, match="^cdb values are bytes or str, not "):
        w.add(b"k", bad)
    assert len(w) == 0
    w.commit()
    assert (tmp_path / "t.cdb").read_bytes() == model_file([])


# ---- the 4 GiB limit ----------------------------------------------------


def finished_size(records) -> int:
    return 2048 + sum(8 + len(k) + len(v) + 16 for k, v in records)


def test_limit_is_checked_at_the_add_that_would_cross_it(tmp_path):
    recs = [(b"k%d" % i, b"v" * i) for i in range(20)]
    limit = finished_size(recs[:12]) + 30  # the 13th record (39 bytes) does not fit
    target = tmp_path / "t.cdb"
    target.write_bytes(b"old")
    w = limited(limit)(target)
    for k, v in recs[:12]:
        w.add(k, v)
    with pytest.raises(pycdb.TooLargeError, match="4 GiB"):
        w.add(*recs[12])
    assert len(w) == 12
    # A record small enough still fits, and what was added commits.
    w.add(b"", b"")
    w.commit()
    data = target.read_bytes()
    assert data == model_file([*recs[:12], (b"", b"")])
    assert len(data) <= limit


def test_limit_is_inclusive(tmp_path):
    recs = [(b"a", b"1"), (b"bb", b"22")]
    exact = finished_size(recs)
    write(tmp_path / "t.cdb", recs, limit=exact)
    assert os.path.getsize(tmp_path / "t.cdb") == exact
    with pytest.raises(pycdb.TooLargeError):
        write(tmp_path / "u.cdb", recs, limit=exact - 1)
    assert entries(tmp_path) == {"t.cdb"}


def test_too_large_in_with_publishes_nothing(tmp_path):
    target = tmp_path / "t.cdb"
    target.write_bytes(b"old")
    with pytest.raises(pycdb.TooLargeError), limited(4096)(target) as w:
        for i in range(1000):
            w.add(b"key%d" % i, b"value")
    assert entries(tmp_path) == {"t.cdb"}
    assert target.read_bytes() == b"old"


def test_too_large_counts_the_hash_slots(tmp_path):
    """Each record costs 16 bytes of hash table too: a file whose records
    fit but whose tables do not is refused."""
    limit = 2048 + 9 * 100  # 100 one-byte-key records fit, without tables
    w = limited(limit)(tmp_path / "t.cdb")
    added = 0
    with pytest.raises(pycdb.TooLargeError):
        for _ in range(100):
            w.add(b"k", b"")
            added += 1
    assert added == (limit - 2048) // (9 + 16)
    w.abort()


_HUGE = textwrap.dedent(
    """
    import mmap, os, resource, sys
    import pycdb

    huge, target, which = sys.argv[1], sys.argv[2], sys.argv[3]
    # Room for the 4 GiB mapping and the interpreter, not for a copy: a
    # backend that reads the buffer fails fast instead of eating memory.
    resource.setrlimit(resource.RLIMIT_AS, (2**32 + 2**30, resource.RLIM_INFINITY))
    with open(huge, "wb") as f:
        f.truncate(2**32)  # sparse: no block is allocated
    fd = os.open(huge, os.O_RDONLY)
    view = memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
    os.close(fd)
    w = pycdb.Writer(target)
    w.add(b"before", b"1")
    try:
        if which == "value":
            w.add(b"k", view)
        else:
            w.add(view, b"v")
    except pycdb.TooLargeError as exc:
        print("TooLargeError:", exc)
    w.add(b"after", b"2")
    w.commit()
    print(w.backend)
    """
)


@pytest.mark.parametrize("which", ["value", "key"])
def test_four_gib_buffer_is_refused_without_reading_it(tmp_path, backend, which):
    """A 4 GiB value mapped from a sparse file: the size check comes first,
    so no page of it is read (the process stays small) and the file is
    still usable."""
    target = tmp_path / "t.cdb"
    proc, peak_kib = run_measured(
        python("-c", _HUGE, str(tmp_path / "huge"), str(target), which),
        env=child_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert lines[0].startswith("TooLargeError:")
    assert lines[-1] == backend
    maxrss_mb = peak_kib // 1024
    assert maxrss_mb < 200, f"the 4 GiB buffer was read: {maxrss_mb} MB resident"
    assert target.read_bytes() == model_file([(b"before", b"1"), (b"after", b"2")])


_EFBIG = textwrap.dedent(
    """
    import errno, os, resource, signal, sys
    import pycdb

    target, when = sys.argv[1], sys.argv[2]
    with open(target, "wb") as f:
        f.write(b"old")
    # Writes that reach 64 KiB fail with EFBIG (instead of killing us with
    # SIGXFSZ).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65535, resource.RLIM_INFINITY))
    # 24-byte records after the 2048-byte header: 4000 of them fill the
    # writers' 64 KiB buffer, whose write fails; 2500 do not, until the 16
    # bytes of hash table per record are written at commit.
    n = 4000 if when == "add" else 2500
    w = pycdb.Writer(target)
    print(w.backend)
    try:
        for i in range(n):
            w.add(b"%06d" % i, b"%010d" % i)
        w.commit()
    except OSError as exc:
        print("OSError", errno.errorcode[exc.errno], "in", "commit" if i == n - 1 else "add")
        try:
            w.add(b"k", b"v")
        except ValueError:
            print("then ValueError")
        w.abort()
    print(sorted(os.listdir(os.path.dirname(target))))
    print(open(target, "rb").read())
    """
)


@pytest.mark.parametrize("when", ["add", "commit"])
def test_write_errors_raise_oserror_and_leave_nothing(tmp_path, backend, when):
    """A write that fails (here: EFBIG past RLIMIT_FSIZE), while adding or
    while writing the tables, is an OSError; the writer refuses more, the
    temp file goes, the target is untouched."""
    proc = subprocess.run(
        # -B: under RLIMIT_FSIZE a .pyc written would be cut short.
        python("-B", "-c", _EFBIG, str(tmp_path / "t.cdb"), when),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        backend,
        f"OSError EFBIG in {when}",
        "then ValueError",
        "['t.cdb']",
        "b'old'",
    ]
