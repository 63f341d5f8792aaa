"""pycdb.rules.parse / compile and pycdb.rules.data: the tcprules language
as a library.  The byte-for-byte agreement with the real tcprules is in
test_make_differential.py; here: the structured form, the two backends
against each other (same bytes, same errors), streaming, and the record
data both ways."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from corehelpers import limited
from helpers import ref, unavailable
from hypothesis import given
from hypothesis import strategies as st

import pycdb
from pycdb import _backend
from pycdb.errors import DataError
from pycdb.rules import Rule, compile, messages, parse
from pycdb.rules.compiler import compile_into
from pycdb.rules.data import decode, encode, pick_delimiter


def rules_of(text: bytes) -> list[Rule]:
    return list(parse(text))


def one(text: bytes) -> Rule:
    (rule,) = rules_of(text)
    return rule


def error_of(text: bytes) -> pycdb.RulesSyntaxError:
    with pytest.raises(pycdb.RulesSyntaxError) as info:
        rules_of(text)
    return info.value


def cdb_records(path: Path) -> list[tuple[bytes, bytes]]:
    with pycdb.Reader(path) as r:
        return list(r.items())


# ---- the structured form -------------------------------------------------------


def test_rule_fields() -> None:
    rule = one(b'10.0.0.1-3:allow,RELAYCLIENT="",RBLSMTPD="-no spam"\n')
    assert rule == Rule(
        lineno=1,
        address=b"10.0.0.1-3",
        action="allow",
        env=((b"RELAYCLIENT", b""), (b"RBLSMTPD", b"-no spam")),
        keys=(b"10.0.0.1", b"10.0.0.2", b"10.0.0.3"),
        data=b"+RELAYCLIENT=\0+RBLSMTPD=-no spam\0",
    )
    deny = one(b"joe@1.2.3.4:deny")
    assert (deny.action, deny.data, deny.keys) == ("deny", b"D\0", (b"joe@1.2.3.4",))


def test_skipped_lines_and_line_numbers() -> None:
    text = (
        b"# a comment: allow\n"  # 1: comment, even with a colon
        b"\n"  # 2: empty
        b"   \t \n"  # 3: blanks only
        b"no colon here\n"  # 4: no colon: skipped silently
        b" #x:allow\n"  # 5: not a comment (the '#' is not first)
        b"1.2.3.4:deny  \t \n"  # 6: trailing blanks trimmed
        b":allow"  # 7: last line without a newline; empty address
    )
    rules = rules_of(text)
    assert [(r.lineno, r.address, r.action) for r in rules] == [
        (5, b" #x", "allow"),
        (6, b"1.2.3.4", "deny"),
        (7, b"", "allow"),
    ]


def test_instructions_any_delimiter() -> None:
    line = (
        b"x:allow" + b",A=/a:b,c/" + b",=''" + b',\'=""' + b",B=\0v\0" + b",C=\xffz\xff" + b",D=xyx"
    )
    rule = one(line)
    assert rule.env == (
        (b"A", b"a:b,c"),
        (b"", b""),
        (b"'", b""),
        (b"B", b"v"),
        (b"C", b"z"),
        (b"D", b"y"),
    )
    assert rule.data == b"+A=a:b,c\0+=\0+'=\0+B=v\0+C=z\0+D=y\0"


@pytest.mark.parametrize(
    ("address", "keys"),
    [
        (b"1.2.3.4-6", [b"1.2.3.4", b"1.2.3.5", b"1.2.3.6"]),
        (b"10.1-2.", [b"10.1.", b"10.2."]),
        (b"1.2-3.4.5", [b"1.2.4.5", b"1.3.4.5"]),
        (b"250-300", [b"%d" % n for n in range(250, 256)]),  # high bound capped at 255
        (b"5-4", []),  # low above high: nothing, silently
        (b"-1", [b"0", b"1"]),  # an empty bound is 0
        (b"1.2.3.-", [b"1.2.3.0"]),
        (b"007-8", [b"7", b"8"]),  # written back without leading zeros
        (b"1.2.3.4\0x-5", [b"1.2.3.4", b"1.2.3.5"]),  # a NUL ends a number
        (b"18446744073709551617-2", [b"1", b"2"]),  # unsigned long wraps
        (b"1-2.3-4", [b"1.3-4", b"2.3-4"]),  # only the first '-' is a range
        (b"=a-b", [b"=a-b"]),  # '=' or '@': never a range
        (b"u-1@1.2.3.4-5", [b"u-1@1.2.3.4-5"]),
    ],
)
def test_ranges(address: bytes, keys: list[bytes]) -> None:
    assert list(one(address + b":allow").keys) == keys


# ---- errors: what, where, and why ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lineno", "line", "words"),
    [
        (b"a:allow\n1.2.3.4:allow\r\n", 2, b"1.2.3.4:allow\r", ["carriage return", "DOS"]),
        (b"a:alow", 1, b"a:alow", ["'allow' or 'deny'", "'alow'"]),
        (b"a: allow", 1, b"a: allow", ["nothing may come between"]),
        (b"a:Allow", 1, b"a:Allow", ["lower case"]),
        (b"::1:allow", 1, b"::1:allow", ["first ':'", "IPv6"]),
        (b"a:allow # why", 1, b"a:allow # why", ["comment must be a line of its own"]),
        (b"a:allow,X", 1, b"a:allow,X", ["no '='"]),
        (b"a:allow,X=", 1, b"a:allow,X=", ["delimiter", "end of the line"]),
        (b'a:allow,X="y', 1, b'a:allow,X="y', ["not closed", "'\"'"]),
        (b'a:allow,X="y"z', 1, b'a:allow,X="y"z', ["column 14", "'z'"]),
        (b"1.2.3.x-5:allow", 1, b"1.2.3.x-5:allow", ["low bound 'x'", "range"]),
        (b"1.2.3.4-5a:deny", 1, b"1.2.3.4-5a:deny", ["high bound '5a'"]),
        (b"1.2.3.4-5:deny,X\r", 1, b"1.2.3.4-5:deny,X\r", ["no '='", "also", "carriage"]),
    ],
)
def test_errors(text: bytes, lineno: int, line: bytes, words: list[str], tmp_path: Path) -> None:
    for run in (rules_of, lambda t: compile(t, tmp_path / "never.cdb")):
        with pytest.raises(pycdb.RulesSyntaxError) as info:
            run(text)
        exc = info.value
        assert (exc.filename, exc.lineno, exc.line) == ("<bytes>", lineno, line)
        for word in words:
            assert word in exc.reason
        assert str(exc).startswith(f"<bytes>:{lineno}: unable to parse this line: ")
        assert "\r" not in str(exc)  # control bytes are shown escaped
    assert os.listdir(tmp_path) == []


def test_instructions_are_checked_before_the_range() -> None:
    # tcprules reads the whole line before it expands the address.
    assert error_of(b"1-x:allowjunk").reason.startswith("expected the end of the line")


def test_error_codes_match_the_c_header() -> None:
    if "cffi" not in _backend.available():
        unavailable("the cffi backend is not loaded")
    from pycdb._cffi import lib

    for name in ("ACTION", "INSTR", "NOEQ", "NODELIM", "UNTERM", "LOW", "HIGH"):
        assert getattr(lib, f"PYCDB_RULES_E{name}") == getattr(messages, f"E_{name}")


# ---- both backends: same bytes, same errors, any chunking -------------------------


def outcome(text: bytes, tmp: Path, chunks: list[int] | None = None) -> tuple[object, ...]:
    """Compile text with the active backend, fed in pieces of the given
    sizes: ("ok", records, bytes) or ("error", class, lineno, line, reason)."""
    target = tmp / "out.cdb"

    class Pieces(io.RawIOBase):
        def __init__(self) -> None:
            self.pos = 0
            self.sizes = list(chunks or [])

        def read(self, n: int = -1) -> bytes:
            size = self.sizes.pop(0) if self.sizes else 65536
            piece = text[self.pos : self.pos + size]
            self.pos += len(piece)
            return piece

    try:
        n = compile(Pieces() if chunks else text, target, filename="f")
    except pycdb.Error as exc:
        assert not target.exists()
        assert os.listdir(tmp) == []
        if isinstance(exc, pycdb.RulesSyntaxError):
            return ("error", type(exc), exc.lineno, exc.line, exc.reason)
        return ("error", type(exc), str(exc))
    return ("ok", n, target.read_bytes())


def on_both(text: bytes, tmp: Path, chunks: list[int] | None = None) -> tuple[object, ...]:
    results = []
    for name in _backend.available():
        work = tmp / name
        work.mkdir(exist_ok=True)
        with _backend.use(name):
            results.append(outcome(text, work, chunks))
        for leftover in work.iterdir():
            leftover.unlink()
    assert all(r == results[0] for r in results), results
    return results[0]


line_bytes = st.sampled_from(
    [
        b"1.2.3.4",
        b"10.0.0.",
        b"1.2.3.4-7",
        b"=x.example.com",
        b"u@1.2.3.4",
        b"#",
        b":",
        b",",
        b"=",
        b'"',
        b"-",
        b" ",
        b"\t",
        b"\r",
        b"\0",
        b"\xff",
        b"allow",
        b"deny",
        b"x",
        b"9",
        b".",
        b"A=",
        b',A="v"',
        b"\n",
        b"\n",
        b"\n",
    ]
)


@given(parts=st.lists(line_bytes, max_size=60), cuts=st.lists(st.integers(1, 9), max_size=30))
def test_backends_agree_in_any_chunking(
    parts: list[bytes], cuts: list[int], tmp_path: Path
) -> None:
    text = b"".join(parts)
    whole = on_both(text, tmp_path)
    assert on_both(text, tmp_path, chunks=cuts or [1]) == whole
    if whole[0] == "ok":  # parse() agrees with what compile() wrote
        records = [(k, r.data) for r in parse(text) for k in r.keys]
        assert whole[1] == len(records)


def test_parse_agrees_with_compile(tmp_path: Path) -> None:
    text = (FIXTURES_RULES / "tcp.smtp").read_bytes()
    compile(text, tmp_path / "x.cdb")
    expected = [(k, r.data) for r in parse(text) for k in r.keys]
    assert cdb_records(tmp_path / "x.cdb") == expected


FIXTURES_RULES = Path(__file__).parent / "fixtures" / "rules"


def test_bulk_blocks_redo_line_by_line_for_the_exact_error(tmp_path: Path) -> None:
    # Many good lines, then a bad one far into a block: the pure backend's
    # bulk path must fall back and name the right line, as C does.
    text = b"1.2.3.4:allow\n" * 5000 + b'5.6.7.8:allow,X="\n' + b"9.9.9.9:allow\n" * 10
    result = on_both(text, tmp_path)
    assert result[:3] == ("error", pycdb.RulesSyntaxError, 5001)


def test_too_large_names_the_line(tmp_path: Path) -> None:
    text = b"".join(b'%d:allow,X="%s"\n' % (i, b"v" * 100) for i in range(40))
    limit = 2048 + 20 * 130
    # The line whose record is the first the limit refuses (Maker.add's rule).
    pos, n, expected = 2048, 0, 0
    for rule in parse(text):
        size = 8 + len(rule.address) + len(rule.data)
        if pos + size + 16 * (n + 1) > limit:
            expected = rule.lineno
            break
        pos, n = pos + size, n + 1
    assert expected
    results = []
    for name in _backend.available():
        with _backend.use(name):
            w = limited(limit)(tmp_path / f"{name}.cdb")
            with pytest.raises(pycdb.TooLargeError) as info:
                compile_into(w, [text], "f")
            w.abort()
            results.append(str(info.value))
    assert results[0].startswith(f"f:{expected}: ")
    assert all(r == results[0] for r in results)
    assert os.listdir(tmp_path) == []


def test_hostile_input_stays_cheap(tmp_path: Path) -> None:
    digits = b"9" * 1_000_000
    text = (
        b"1.2.3."
        + digits
        + b"-"
        + digits
        + b":allow\n"  # wraps, no huge integers
        + b"#"
        + b"x" * 3_000_000
        + b"\n"  # a long comment across many chunks
        + b"1.2.3.4:allow,X=/"
        + b"v" * 200_000
        + b"/\n"
    )
    result = on_both(text, tmp_path, chunks=[4096] * 1000)
    assert result[0] == "ok"
    assert result[1] == sum(len(r.keys) for r in parse(text))


# ---- sources ---------------------------------------------------------------------


def test_sources(tmp_path: Path) -> None:
    text = b'# c\n1.2.3.4:deny\n=h:allow,A="b"\n'
    path = tmp_path / "rules"
    path.write_bytes(text)
    expected = [(r.lineno, r.address, r.data) for r in parse(text)]
    for source in (
        path,
        str(path),
        io.BytesIO(text),
        text.split(b"\n"),  # lines without newlines
        text.decode().splitlines(keepends=True),  # str lines with them
    ):
        assert [(r.lineno, r.address, r.data) for r in parse(source)] == expected
    assert error_of(b"x:y").filename == "<bytes>"
    with pytest.raises(pycdb.RulesSyntaxError) as info:
        list(parse(["a:allow", "b:bad"]))
    assert (info.value.filename, info.value.lineno) == ("<lines>", 2)
    path.write_bytes(b"a:allow\nb:bad\n")
    with pytest.raises(pycdb.RulesSyntaxError) as info:
        list(parse(path))
    assert (info.value.filename, info.value.lineno) == (str(path), 2)
    with pytest.raises(FileNotFoundError):
        parse(tmp_path / "missing")


def test_compile_edits_rules_without_text(tmp_path: Path) -> None:
    """The relay-tool use: read, edit as Rule objects, rebuild."""
    rules_path = FIXTURES_RULES / "tcp.smtp"
    rules = [r for r in parse(rules_path) if r.address != b"127.0.0.1"]
    rules.insert(0, Rule.make("192.0.2.7", "deny"))
    rules.append(Rule.make(b"10.9.8.1-2", "allow", [(b"RELAYCLIENT", b"")]))
    target = tmp_path / "tcp.smtp.cdb"
    n = compile(rules, target)
    with pycdb.Reader(target) as r:
        assert r.get(b"192.0.2.7") == b"D\0"
        assert r.get(b"127.0.0.1") is None
        assert r.get(b"10.9.8.2") == b"+RELAYCLIENT=\0"
        assert len(r) == n
    assert os.listdir(tmp_path) == ["tcp.smtp.cdb"]


def test_compile_failure_leaves_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "t.cdb"
    target.write_bytes(b"old")
    with pytest.raises(pycdb.RulesSyntaxError):
        compile(b"a:allow\nb:nope\n", target, tmp_path=tmp_path / "t.tmp")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["t.cdb"]


# ---- Rule.make and Rule.line -----------------------------------------------------


env_names = st.binary(max_size=6).filter(lambda b: b"=" not in b and b"\n" not in b)
env_values = st.binary(max_size=12).filter(lambda b: b"\n" not in b)


@given(
    address=st.sampled_from([b"1.2.3.4", b"", b"=mx.example.com", b"1.2.3.0-9", b"u@h", b" x"]),
    action=st.sampled_from(["allow", "deny"]),
    env=st.lists(st.tuples(env_names, env_values), max_size=4),
)
def test_make_and_line_round_trip(
    address: bytes, action: str, env: list[tuple[bytes, bytes]]
) -> None:
    rule = Rule.make(address, action, env, lineno=1)
    back = one(rule.line())
    assert back == rule


def test_make_refuses_what_no_line_can_say() -> None:
    for bad in (b"a:b", b"#x", b"a\nb"):
        with pytest.raises(ValueError):
            Rule.make(bad)
    with pytest.raises(ValueError):
        Rule.make(b"1-x")
    with pytest.raises(ValueError):
        Rule.make(b"a", "permit")
    with pytest.raises(ValueError):
        Rule.make(b"a", "allow", [(b"A=B", b"")])
    every = bytes(b for b in range(256) if b != 10)
    with pytest.raises(ValueError):
        Rule.make(b"a", "allow", [(b"A", every)])
    # Free bytes only a space or tab: fine in the middle, not at the end.
    almost = bytes(b for b in range(256) if b not in (9, 10, 32))
    assert pick_delimiter(almost) == 9 and pick_delimiter(almost, last=True) is None
    rule = Rule.make(b"a", "allow", [(b"A", almost), (b"B", b"")], lineno=1)
    assert one(rule.line()) == rule


# ---- the record data ---------------------------------------------------------------


@given(
    action=st.sampled_from(["allow", "deny"]),
    env=st.lists(st.tuples(env_names, env_values), max_size=4),
)
def test_data_round_trip(action: str, env: list[tuple[bytes, bytes]]) -> None:
    data = encode(action, env)
    got_action, got_env = decode(data)
    assert got_action == action
    assert encode(got_action, got_env) == data  # NULs in values may split differently


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", ("allow", ())),
        (b"D\0", ("deny", ())),
        (b"+A=b\0+C=\0", ("allow", ((b"A", b"b"), (b"C", b"")))),
        (b"+A=x\0y\0", ("allow", ((b"A", b"x\0y"),))),  # from ,A="x<NUL>y"
        (b"+A\0B=v\0", ("allow", ((b"A\0B", b"v"),))),  # from ,A<NUL>B="v"
        (b"+A=x\0+B\0+C=y\0", ("allow", ((b"A", b"x\0+B"), (b"C", b"y")))),  # tcpserver's reading
        (b"D\0+=\0", ("deny", ((b"", b""),))),
    ],
)
def test_decode(data: bytes, expected: tuple[object, ...]) -> None:
    assert decode(data) == expected


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"D", 0),  # no NUL
        (b"+A=b", 4),
        (b"x\0", 0),
        (b"\0", 0),
        (b"D\0D\0", 2),
        (b"+A=b\n\0", 4),
        (b"+AB\0", 0),
        (b"+A=" + bytes(b for b in range(256) if b != 10) + b"\0", 3),  # no delimiter left
    ],
)
def test_decode_refuses_what_tcprules_never_writes(data: bytes, offset: int) -> None:
    with pytest.raises(DataError) as info:
        decode(data)
    assert info.value.offset == offset
    assert isinstance(info.value, ValueError) and isinstance(info.value, pycdb.Error)


@given(
    data=st.binary(max_size=16)
    | st.lists(st.sampled_from([b"D", b"\0", b"+", b"=", b"a"]), max_size=12).map(b"".join)
)
def test_decode_is_exact_against_tcprules(data: bytes, tmp_path: Path) -> None:
    """Whatever decode() accepts, the real tcprules writes back from the
    rule it describes."""
    try:
        action, env = decode(data)
    except DataError:
        return
    rule = Rule.make(b"k", action, env)
    out = tmp_path / "o.cdb"
    proc = subprocess.run(
        [ref("tcprules"), str(out), str(tmp_path / "o.tmp")],
        input=rule.line() + b"\n",
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert cdb_records(out) == [(b"k", data)]
