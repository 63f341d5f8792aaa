"""Decompilation: rules text from which the real tcprules (and pycdb's
compiler) rebuild the database byte for byte, on generated rules files;
range folding; refusals naming the record; --salvage; the command."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest
from helpers import FIXTURES, ref
from hypothesis import assume, example, given
from hypothesis import strategies as st
from rules_helpers import GOOD_RULES, write_cdb
from test_cli_cdbtools import outside

import pycdb
from pycdb import cli
from pycdb._text import quote
from pycdb.errors import DecompileError
from pycdb.rules import compile as pycdb_compile
from pycdb.rules import soundness
from pycdb.rules.decompile import decompile


def tcprules(path: Path, text: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ref("tcprules"), str(path), str(path) + ".tmp"],
        input=text,
        capture_output=True,
        timeout=60,
    )


def text_of(source: Path | bytes, **kw: object) -> bytes:
    with decompile(source, **kw) as d:  # type: ignore[arg-type]
        return b"".join(d)


def roundtrip(tmp_path: Path, text: bytes, generated: bool = False) -> bytes:
    """Compile ``text`` with tcprules, decompile, and check that tcprules
    and pycdb both rebuild the same bytes; returns the decompiled text
    (without its comment line).  ``generated`` text that tcprules
    refuses is passed over."""
    orig = tmp_path / "orig.cdb"
    done = tcprules(orig, text)
    if generated:
        assume(done.returncode == 0)
    assert done.returncode == 0, done.stderr
    original = orig.read_bytes()
    out = text_of(orig)
    head, _, body = out.partition(b"\n")
    assert head.startswith(b"# tcprules text decompiled by pycdb ")
    assert not any(line.startswith(b"#") for line in body.split(b"\n"))
    again = tmp_path / "again.cdb"
    done = tcprules(again, out)
    assert done.returncode == 0, done.stderr
    assert again.read_bytes() == original
    pycdb_compile(out, tmp_path / "ours.cdb")  # the active backend's compiler
    assert (tmp_path / "ours.cdb").read_bytes() == original
    # From the bytes too, and without the comment: the same lines.
    assert text_of(original, comment=False) == body
    records = len(list(pycdb.Reader.from_bytes(original).items()))
    assert body.count(b"\n") <= records
    return body


@given(text=GOOD_RULES)
@example(text=(FIXTURES / "rules" / "ranges.rules").read_bytes())
@example(text=(FIXTURES / "rules" / "instructions.rules").read_bytes())
@example(text=b"1.2.3.4-5:allow\n1.2.3.4-5:allow\n")
def test_roundtrip_generated(tmp_path: Path, text: bytes) -> None:
    roundtrip(tmp_path, text, generated=True)


# Rules made to fold: runs of numbered keys in every field position, with
# gaps, repeats, shared or differing data, and odd neighbours.
_data = st.sampled_from([b"allow", b"deny", b'allow,RELAYCLIENT=""', b"allow,A='\"'"])
_fields = st.lists(st.sampled_from([b"1", b"10", b"255", b"0", b"a", b"x-y", b""]), max_size=3)


@st.composite
def _runs(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        before = draw(_fields)
        after = draw(_fields)
        lo = draw(st.integers(0, 255))
        count = draw(st.integers(1, 12))
        data = draw(_data)
        ranged = draw(st.booleans())
        prefix = b"".join(f + b"." for f in before)
        suffix = b"".join(b"." + f for f in after)
        if ranged:
            lines.append(b"%s%d-%d%s:%s" % (prefix, lo, lo + count - 1, suffix, data))
        else:
            for n in range(lo, min(lo + count, 258)):
                if draw(st.integers(0, 9)) == 0:
                    continue  # a gap
                lines.append(b"%s%d%s:%s" % (prefix, n, suffix, data))
                if draw(st.integers(0, 19)) == 0:
                    lines.append(lines[-1])  # the same key again
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from([b"=a-1", b"u@1.2-3", b"9:deny", b":allow"])))
    return b"\n".join(lines) + b"\n"


@given(text=_runs())
def test_roundtrip_runs(tmp_path: Path, text: bytes) -> None:
    roundtrip(tmp_path, text, generated=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1.2.3.4:allow\n1.2.3.5:allow\n1.2.3.6:allow\n", b"1.2.3.4-6:allow\n"),
        (b"1.2.9.x:deny\n1.2.10.x:deny\n", b"1.2.9-10.x:deny\n"),
        (b"9:allow\n10:allow\n", b"9-10:allow\n"),
        (b"1.2.3.4:allow\n1.2.3.4:allow\n", b"1.2.3.4:allow\n1.2.3.4:allow\n"),
        (b"1.2.3.4:allow\n1.2.3.5:deny\n", b"1.2.3.4:allow\n1.2.3.5:deny\n"),
        (b"1.2.3.5:allow\n1.2.3.4:allow\n", b"1.2.3.5:allow\n1.2.3.4:allow\n"),
        (b"1.2.3.254-256:allow\n1.2.3.256:allow\n", b"1.2.3.254-255:allow\n1.2.3.256:allow\n"),
        (b"1.2.3.255:allow\n1.2.4.0:allow\n", b"1.2.3.255:allow\n1.2.4.0:allow\n"),
        (b"=a-b:allow\n=a-c:allow\n", b"=a-b:allow\n=a-c:allow\n"),
        (b"1-1.2.3-x:deny\n", b"1.2-2.3-x:deny\n"),
        (b"1.2-3.3-x:deny\n", b"1.2-3.3-x:deny\n"),
        (b"1.2.3.1:allow\n1.2.4.1:allow\n1.2.5.1:allow\n", b"1.2.3-5.1:allow\n"),
        (b"007-9:allow\n", b"7-9:allow\n"),
        (b"0-1.:allow\n2.:allow\n", b"0-2.:allow\n"),
        (b'x:allow,A=/a"b/\n', b"x:allow,A='a\"b'\n"),
        (b":deny\n", b":deny\n"),
    ],
)
def test_folding(tmp_path: Path, text: bytes, expected: bytes) -> None:
    assert roundtrip(tmp_path, text) == expected


def test_fixtures(tmp_path: Path) -> None:
    for path in sorted((FIXTURES / "rules").glob("*.cdb")):
        out = text_of(path)
        done = tcprules(tmp_path / "x.cdb", out)
        assert done.returncode == 0, (path, done.stderr)
        assert (tmp_path / "x.cdb").read_bytes() == path.read_bytes(), path


def test_empty_database(tmp_path: Path) -> None:
    assert roundtrip(tmp_path, b"") == b""


def test_last_value_delimiter_is_not_blank(tmp_path: Path) -> None:
    """A value holding every printable byte: the last instruction's
    delimiter must not be a space or tab, which tcprules would trim."""
    value = bytes(b for b in range(33, 256) if b != ord("\n"))
    data = b"+A=" + value + b"\0"
    path = tmp_path / "v.cdb"
    write_cdb(path, [(b"k", data)])
    out = text_of(path, comment=False)
    assert out.endswith(b"\n") and out[-2:-1] not in (b" ", b"\t")
    done = tcprules(tmp_path / "x.cdb", out)
    assert done.returncode == 0 and (tmp_path / "x.cdb").read_bytes() == path.read_bytes()


# ---- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "data", "why"),
    [
        (b"a:b", b"", "no rules line produces this key: it contains ':'"),
        (b"a\nb", b"", "newline"),
        (b"#x", b"", "starts with '#'"),
        (b"mail-1.example.com", b"", "only a range line can produce it"),
        (b"ok", b"junk", "its data is not tcprules data"),
        (b"ok", b"+A=1", "does not end with a NUL"),
    ],
)
def test_impossible_record(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], key: bytes, data: bytes, why: str
) -> None:
    path = tmp_path / "bad.cdb"
    good = [(b"1.2.3.4", b"D\0"), (b"", b"")]
    write_cdb(path, [*good, (key, data), (b"later:1", b"")])
    pos = 2048 + sum(8 + len(k) + len(d) for k, d in good)
    with pytest.raises(DecompileError) as info:
        decompile(path)
    exc = info.value
    assert (exc.offset, exc.key) == (pos, key) and why in exc.reason
    assert str(exc).startswith(f"{path}: record at offset {pos} (key {quote(key)}): ")
    assert str(exc).endswith("(and 1 more such records)")
    assert cli.main(["decompile", str(path)]) == 100
    out, err = capsysbinary.readouterr()
    assert out == b""
    assert err.startswith(f"pycdb: fatal: {path}: record at offset {pos} (key ".encode())
    assert why.encode() in err


def test_unsound_file(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = tmp_path / "t.cdb"
    assert tcprules(path, b'1.2.3.4:deny\n10.:allow,A="1"\n').returncode == 0
    good = path.read_bytes()
    path.write_bytes(good + b"junk")
    with pytest.raises(DecompileError, match="not a sound cdb.*belong to no record") as info:
        decompile(path)
    assert info.value.offset == len(good)
    assert cli.main(["decompile", str(path)]) == 100
    out, err = capsysbinary.readouterr()
    assert out == b"" and b"not a sound cdb" in err
    # --salvage: the records, and warnings; the text rebuilds the good file.
    assert cli.main(["decompile", "--salvage", str(path)]) == 0
    out, err = capsysbinary.readouterr()
    assert b"\n# NOT EXACT: not a sound cdb" in out
    assert err.startswith(b"pycdb: warning: ") and b"does not rebuild the file" in err
    done = tcprules(tmp_path / "x.cdb", out)
    assert done.returncode == 0 and (tmp_path / "x.cdb").read_bytes() == good


def test_truncated_file_salvage(tmp_path: Path) -> None:
    path = tmp_path / "t.cdb"
    text = b"".join(b'10.0.%d.:allow,N="%d"\n' % (i, i) for i in range(50))
    assert tcprules(path, text).returncode == 0
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(DecompileError, match="not a sound cdb"):
        decompile(path)
    with decompile(path, salvage=True) as d:
        lines = list(d)
        assert not d.exact
    assert lines[-1] == b'10.0.49.:allow,N="49"\n'  # the records are intact: all come out
    assert sum(1 for line in lines if not line.startswith(b"#")) == 50


def test_salvage_skips_impossible_records(tmp_path: Path) -> None:
    path = tmp_path / "bad.cdb"
    write_cdb(path, [(b"1.2.3.4", b"D\0"), (b"a:b", b"D\0"), (b"1.2.3.5", b"D\0"), (b"x", b"?")])
    with decompile(path, salvage=True, comment=False) as d:
        out = b"".join(d)
        assert d.skipped == 2 and not d.exact
    lines = out.split(b"\n")
    second, fourth = 2048 + 17, 2048 + 17 + 13 + 17
    assert lines[0] == b"1.2.3.4:deny"
    assert lines[1].startswith(b"# skipped the record at offset %d (key 'a:b'): " % second)
    assert lines[2] == b"1.2.3.5:deny"  # not folded across the skipped record
    assert lines[3].startswith(b"# skipped the record at offset %d (key 'x'): its data" % fourth)
    done = tcprules(tmp_path / "x.cdb", out)
    assert done.returncode == 0
    assert list(pycdb.Reader(tmp_path / "x.cdb").items()) == [
        (b"1.2.3.4", b"D\0"),
        (b"1.2.3.5", b"D\0"),
    ]


def _same_home_keys(count: int) -> tuple[bytes, bytes]:
    """Two keys in the same hash table with the same home slot in a table
    of ``2 * count`` slots."""
    seen: dict[tuple[int, int], bytes] = {}
    for i in range(100000):
        key = b"10.%d.%d.%d" % (i // 65536, i // 256 % 256, i % 256)
        h = pycdb.hash(key)
        where = (h & 255, (h >> 8) % (2 * count))
        if where in seen:
            return seen[where], key
        seen[where] = key
    raise AssertionError("no two keys share a home slot")


def test_sound_but_not_canonical(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Another writer's slot order: lookups work, the validation says so,
    and decompile refuses (no tcprules run writes these bytes)."""
    a, b = _same_home_keys(2)
    path = tmp_path / "t.cdb"
    write_cdb(path, [(a, b"D\0"), (b, b"")])
    buf = bytearray(path.read_bytes())
    t = pycdb.hash(a) & 255
    hpos, slots = struct.unpack_from("<II", buf, 8 * t)
    assert slots == 4
    words = list(struct.unpack_from("<8I", buf, hpos))
    pairs = [words[i : i + 2] for i in range(0, 8, 2)]
    home = (pycdb.hash(a) >> 8) % 4
    nxt = (home + 1) % 4
    pairs[home], pairs[nxt] = pairs[nxt], pairs[home]  # b first, then a
    struct.pack_into("<8I", buf, hpos, *[w for p in pairs for w in p])
    path.write_bytes(bytes(buf))
    report = soundness.validate_rules(path)
    assert report.sound and not report.canonical
    assert f"hash table {t}" in report.layout_note
    with pycdb.Reader(path) as r:
        assert r.get(a) == b"D\0" and r.get(b) == b""
    with pytest.raises(DecompileError, match="not laid out as tcprules writes it"):
        decompile(path)
    assert cli.main(["decompile", str(path)]) == 100
    assert cli.main(["validate", str(path)]) == 0
    out, err = capsysbinary.readouterr()
    assert b": sound; every record is one tcprules can write (note: it is not laid out" in out
    # Salvaged text rebuilds the records, in cdbmake's layout.
    done = tcprules(tmp_path / "x.cdb", text_of(path, salvage=True))
    assert done.returncode == 0
    assert list(pycdb.Reader(tmp_path / "x.cdb").items()) == [(a, b"D\0"), (b, b"")]


def test_not_a_cdb(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"hello")
    with pytest.raises(DecompileError, match="shorter than the 2048-byte header"):
        decompile(path)
    assert text_of(path, salvage=True).count(b"\n") == 2  # the comment and the note


# ---- the command ---------------------------------------------------------------------------


def test_command(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = FIXTURES / "rules" / "tcp.smtp.cdb"
    assert cli.main(["decompile", str(path)]) == 0
    out, err = capsysbinary.readouterr()
    assert err == b"" and out == text_of(path)
    assert cli.main(["decompile", "--no-comment", "--", str(path)]) == 0
    out, err = capsysbinary.readouterr()
    assert out == text_of(path, comment=False) and not out.startswith(b"#")


def test_command_errors(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    missing = tmp_path / "missing.cdb"
    assert cli.main(["decompile", str(missing)]) == 111
    out, err = capsysbinary.readouterr()
    assert out == b""
    assert err == f"pycdb: fatal: unable to read {missing}: file does not exist\n".encode()
    assert cli.main(["decompile", str(tmp_path)]) == 111
    assert b"is a directory" in capsysbinary.readouterr().err
    assert cli.main(["decompile", "/dev/zero"]) == 111
    assert b"not a regular file or a pipe" in capsysbinary.readouterr().err
    for args in ([], ["a", "b"], ["--bogus", "a"]):
        assert cli.main(["decompile", *args]) == 100
        out, err = capsysbinary.readouterr()
        assert err.startswith(b"pycdb: fatal: usage: pycdb decompile FILE")
    assert cli.main(["decompile", "--help"]) == 0
    assert b"usage: pycdb decompile" in capsysbinary.readouterr().out


def test_fifo_is_never_waited_on(tmp_path: Path, backend: str) -> None:
    """A FIFO opens without blocking and is read as a pipe (one no one
    writes to is empty: no text rebuilds it); /dev/zero is refused."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    p = outside(["decompile", str(fifo)], backend)
    assert (p.returncode, p.stdout) == (100, b"")
    assert p.stderr.decode() == (
        f"pycdb: fatal: {fifo}: not a sound cdb, so no rules text rebuilds it: offset 0: "
        "the file is 0 bytes, shorter than the 2048-byte header\n"
    )
    p = outside(["decompile", "/dev/zero"], backend)
    assert (p.returncode, p.stdout) == (111, b"")
    assert p.stderr == (
        b"pycdb: fatal: unable to read /dev/zero: not a regular file or a pipe "
        b"(a character device)\n"
    )


def test_pipe(backend: str) -> None:
    """A pipe is read to its end."""
    path = FIXTURES / "rules" / "tcp.smtp.cdb"
    p = outside(["decompile", "--no-comment", "/dev/stdin"], backend, stdin=path.read_bytes())
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout == text_of(path, comment=False)


def test_comment_names_the_file_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "odd\nname\x1b.cdb"
    assert tcprules(path, b"1.2.3.4:allow\n").returncode == 0
    lines = text_of(path).split(b"\n")
    assert lines[0].endswith(b"odd\\x0aname\\x1b.cdb (1 records)")
    assert lines[1:] == [b"1.2.3.4:allow", b""]


def test_file_name_that_is_not_utf8(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Escaped in the comment line like any bytes in a message, never an
    internal error."""
    path = tmp_path / os.fsdecode(b"n\xff\xc3\xa9.cdb")
    assert tcprules(path, b"1.2.3.4:allow\n").returncode == 0
    assert cli.main(["decompile", str(path)]) == 0
    out, err = capsysbinary.readouterr()
    assert err == b""
    assert out.split(b"\n")[0].endswith(b"n\\xff\xc3\xa9.cdb (1 records)")
    assert out.split(b"\n")[1:] == [b"1.2.3.4:allow", b""]


def test_library_iterates_lines_and_chunks(tmp_path: Path) -> None:
    path = tmp_path / "t.cdb"
    text = b"".join(b"%d.%d.:allow\n" % (i, i) for i in range(70000))  # two walk batches
    assert tcprules(path, text).returncode == 0
    with decompile(path, comment=False) as d:
        chunks = list(d.chunks())
    assert len(chunks) > 1 and b"".join(chunks) == text
    with decompile(path, comment=False) as d:
        lines = list(d)
    assert lines == text.splitlines(keepends=True)


def test_salvage_stops_where_the_records_break(tmp_path: Path) -> None:
    path = tmp_path / "t.cdb"
    text = b"".join(b'10.0.%d.:allow,N="%d"\n' % (i, i) for i in range(5))
    assert tcprules(path, text).returncode == 0
    buf = bytearray(path.read_bytes())
    third = 2048 + 2 * len(b"10.0.0.+N=0\0") + 16
    struct.pack_into("<I", buf, third, 10**6)  # its key runs into the tables
    path.write_bytes(bytes(buf))
    with pytest.raises(DecompileError, match=f"offset {third}: the record at {third}"):
        decompile(path)
    lines = text_of(path, salvage=True, comment=False).split(b"\n")
    assert lines[:2] == [b'10.0.0.:allow,N="0"', b'10.0.1.:allow,N="1"']
    assert lines[2].startswith(b"# the records end here: offset %d: the record at" % third)
    assert lines[3:] == [b""]


# ---- damaged files: refused, or rebuilt exactly ---------------------------------------

_BASE = (
    b'127.0.0.1:allow,RELAYCLIENT=""\n10.0.0.1-4:deny\n=mx.example.com:allow,A="1"\n'
    b"joe@1.2.3.4:allow\n:deny\n"
)


@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 40),
    tail=st.binary(max_size=3),
)
def test_damaged_files(tmp_path: Path, edits: list[tuple[int, int]], cut: int, tail: bytes) -> None:
    """Any damage: validation and salvage never fail, and whenever
    decompile accepts a file, tcprules rebuilds exactly its bytes."""
    orig = tmp_path / "orig.cdb"
    assert tcprules(orig, _BASE).returncode == 0
    buf = bytearray(orig.read_bytes())
    for where, value in edits:
        buf[where % len(buf)] = value
    data = bytes(buf[: len(buf) - cut]) + tail
    report = soundness.validate_rules_bytes(data)
    with decompile(data, salvage=True) as d:
        salvaged = b"".join(d)
    assert tcprules(tmp_path / "s.cdb", salvaged).returncode == 0
    try:
        text = text_of(data)
    except DecompileError as exc:
        assert not (report.sound and report.canonical) and exc.reason
        return
    assert report.sound and report.canonical and text == salvaged
    assert tcprules(tmp_path / "x.cdb", text).returncode == 0
    assert (tmp_path / "x.cdb").read_bytes() == data
