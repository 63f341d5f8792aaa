"""``pycdb make`` against the real ``tcprules`` on generated rules files.

For every file: the same exit code; when tcprules accepts it, identical
database bytes and mode; when it refuses it, exit 100 from both, nothing
published and no temporary file left by pycdb, and the line pycdb names
is the line tcprules prints.  Runs under each backend (the autouse
fixture), the pycdb side in-process for speed.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
import tempfile
from pathlib import Path

from helpers import ref
from hypothesis import example, given
from hypothesis import strategies as st

import pycdb
from pycdb import cli
from pycdb.rules import compile

_counter = itertools.count()


def run_make(workdir: Path, text: bytes) -> tuple[int, str, str]:
    """``pycdb make out.cdb out.tmp < text`` in this process (stdin is
    really fd 0, from a file): (exit code, stdout, stderr)."""
    src = workdir / f"in{next(_counter)}"
    src.write_bytes(text)
    fd = os.open(src, os.O_RDONLY)
    saved = os.dup(0)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.dup2(fd, 0)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["make", str(workdir / "out.cdb"), str(workdir / "out.tmp")])
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(fd)
        src.unlink()
    return code, out.getvalue(), err.getvalue()


def run_tcprules(workdir: Path, text: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ref("tcprules"), str(workdir / "out.cdb"), str(workdir / "out.tmp")],
        input=text,
        capture_output=True,
        cwd=workdir,
        timeout=60,
    )


def lines_of(text: bytes) -> list[bytes]:
    """tcprules' lines: split at newlines, a last line without one kept."""
    parts = text.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    return parts


def check_same(text: bytes) -> None:
    ours_dir = Path(tempfile.mkdtemp(prefix="pycdb-make-"))
    theirs_dir = Path(tempfile.mkdtemp(prefix="tcprules-"))
    try:
        theirs = run_tcprules(theirs_dir, text)
        code, out, err = run_make(ours_dir, text)
        assert theirs.stdout == b"" and out == ""
        assert code == theirs.returncode, (err, theirs.stderr)
        if code == 0:
            ours_cdb, theirs_cdb = ours_dir / "out.cdb", theirs_dir / "out.cdb"
            assert ours_cdb.read_bytes() == theirs_cdb.read_bytes()
            assert ours_cdb.stat().st_mode == theirs_cdb.stat().st_mode
            assert sorted(os.listdir(ours_dir)) == ["out.cdb"]
            return
        assert code == 100
        assert os.listdir(ours_dir) == []  # nothing published, temporary removed
        assert err.startswith("pycdb: fatal: ") and "unable to parse this line: " in err
        # The line pycdb blames is the one tcprules prints (up to a NUL).
        with __import__("pytest").raises(pycdb.RulesSyntaxError) as info:
            compile(text, ours_dir / "lib.cdb")
        exc = info.value
        prefix = b"tcprules: fatal: unable to parse this line: "
        assert theirs.stderr.startswith(prefix)
        assert theirs.stderr[len(prefix) : -1] == exc.line.split(b"\0")[0]
        assert lines_of(text)[exc.lineno - 1].rstrip(b" \t") == exc.line
        assert f"-:{exc.lineno}:" in err or f":{exc.lineno}: unable" in err
    finally:
        for d in (ours_dir, theirs_dir):
            for f in d.iterdir():
                f.unlink()
            d.rmdir()


# ---- rules files: mostly well-formed, with every kind of trouble -----------------

_bounds = st.sampled_from(
    [
        "",
        "0",
        "00",
        "1",
        "007",
        "9",
        "42",
        "199",
        "255",
        "256",
        "300",
        "999",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "18446744073709551617",
        "99999999999999999999999",
        "x",
        "1x",
        "1 ",
        " 1",
        "+1",
        "1\x002",
        "3\x00",
        "\xff",
    ]
)
_prefixes = st.sampled_from(["", "1.", "1.2.", "10.0.0.", "192.168.1.", "a.", "1..", "."])
_suffixes = st.sampled_from(["", "", ".", ".5", ".5.6", ".7-8", ".x", "-9", "@x", "=y"])
_octet = st.integers(0, 300).map(str)

_range = st.builds(lambda p, lo, hi, s: f"{p}{lo}-{hi}{s}", _prefixes, _bounds, _bounds, _suffixes)
_ip = st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", _octet, _octet, _octet, _octet)
_prefix = st.builds(lambda a, b: f"{a}.{b}.", _octet, _octet)
_host = st.sampled_from(
    ["=", "=mx.example.com", "=.example.com", "=mail-1.example.com", "=a-b-c", "=1.2.3.4-5"]
)
_user = st.builds(lambda u, a: f"{u}@{a}", st.sampled_from(["joe", "a-b", "", "x.y"]), _ip | _range)
_junk = st.binary(max_size=6).filter(lambda b: b"\n" not in b and b":" not in b)
_address = st.one_of(
    _ip.map(str.encode),
    _prefix.map(str.encode),
    _range.map(lambda s: s.encode("latin-1")),
    _host.map(str.encode),
    _user.map(lambda s: s.encode("latin-1")),
    _junk,
    st.sampled_from([b"", b" 1.2.3.4", b"1.2.3.4 ", b"\xc3\xa9t\xc3\xa9", b"#x", b"\r"]),
)
_action = st.sampled_from([b"allow"] * 6 + [b"deny"] * 3) | st.sampled_from(
    [b"", b"alow", b"ALLOW", b" allow", b"allowx", b"denyy", b"permit", b"allow:deny"]
)
_delims = st.sampled_from(
    [b'"'] * 6 + [b"'", b"/", b",", b":", b"=", b" ", b"\t", b"\0", b"\xff", b"a", b"\r"]
)


@st.composite
def _instruction(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from([b"RELAYCLIENT", b"RBLSMTPD", b"QMAILQUEUE", b"", b"A,B", b"\xe9"]))
    d = draw(_delims)
    value = draw(st.binary(max_size=6)).replace(b"\n", b"").replace(d, b"")
    shape = draw(st.sampled_from(["ok"] * 12 + ["noeq", "nodelim", "unclosed", "junk", "space"]))
    if shape == "noeq":
        return b"," + name.replace(b"=", b"")
    if shape == "nodelim":
        return b"," + name + b"="
    if shape == "unclosed":
        return b"," + name + b"=" + d + value
    if shape == "junk":
        return b"," + name + b"=" + d + value + d + b"x"
    if shape == "space":
        return b" ," + name + b"=" + d + value + d
    return b"," + name + b"=" + d + value + d


_trailing = st.sampled_from([b""] * 8 + [b" ", b"\t", b" \t ", b"\r", b"\r ", b" \r", b"\r\t"])


@st.composite
def _line(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["rule"] * 10 + ["comment", "blank", "spaces", "nocolon", "raw"]))
    if kind == "comment":
        return b"#" + draw(st.binary(max_size=10)).replace(b"\n", b"")
    if kind == "blank":
        return b""
    if kind == "spaces":
        return draw(st.sampled_from([b" ", b"\t", b"  \t ", b" \r"]))
    if kind == "nocolon":
        return draw(_address)
    if kind == "raw":
        return draw(st.binary(max_size=12)).replace(b"\n", b"")
    instructions = b"".join(draw(st.lists(_instruction(), max_size=3)))
    return draw(_address) + b":" + draw(_action) + instructions + draw(_trailing)


_files = st.builds(
    lambda lines, newline: b"\n".join(lines) + (b"\n" if newline else b""),
    st.lists(_line(), max_size=8),
    st.booleans(),
)


@given(text=_files)
@example(text=b"")
@example(text=b"1.2.3.4:allow\r\n")
@example(text=b"1.2.3.18446744073709551617-2:allow\n1.2.3.4\0x-5:allow")
@example(text=b"10.0.0.1-3.:deny,A=\0v\0\n  \n#c\nx")
def test_same_as_tcprules(text: bytes) -> None:
    check_same(text)


@given(
    text=st.lists(_line(), min_size=1, max_size=4)
    .map(b"\n".join)
    .filter(lambda t: all(b"\r" not in line for line in t.split(b"\n")))
)
def test_same_as_tcprules_without_carriage_returns(text: bytes) -> None:
    # Fewer instant refusals: more files that tcprules compiles.
    check_same(text)


@given(text=st.binary(max_size=40))
def test_same_as_tcprules_on_raw_bytes(text: bytes) -> None:
    check_same(text)


def test_fixture_files_as_a_whole(backend: str) -> None:
    fixtures = Path(__file__).parent / "fixtures" / "rules"
    for path in sorted(fixtures.iterdir()):
        if path.suffix not in (".cdb", ".md"):
            check_same(path.read_bytes())


def test_many_lines() -> None:
    # Enough text for several chunks in C and several bulk blocks in pure.
    lines = [
        b'%d.%d.%d.%d-%d:allow,N="%d"' % (i % 7, i % 251, i % 13, i % 256, i % 300, i)
        for i in range(12000)
    ]
    check_same(b"\n".join(lines) + b"\n#end")
