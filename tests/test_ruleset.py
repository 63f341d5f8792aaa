"""RuleSet.check against the real tcprulescheck: the same key, the same
record, the same reading of its data, on compiled and hand-made files;
the same exceptions from both backends on corrupt ones."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rules_helpers import (
    Conn,
    candidate_keys,
    compile_rules,
    handmade,
    scenarios,
    tcprulescheck,
    write_cdb,
)

import pycdb
from pycdb import _backend
from pycdb.cli.check import tcprulescheck_text
from pycdb.errors import DialectError
from pycdb.rules import Decision, RuleSet


def agree(path: Path, rules: RuleSet, conn: Conn) -> Decision:
    """Check one connection both ways; they must print the same bytes.
    ``check_text`` is tcprulescheck's reading (TCPREMOTEIP as given);
    ``check`` gives the same answer for every address 0.88's tcpserver can
    give, and refuses an IPv6 one, which it never gives."""
    ip, host, info = conn
    want = tcprulescheck(path, ip, host, info)
    assert want.returncode == 0, want.stderr
    got = rules.check_text(ip, host, info)
    if b":" in ip:
        with pytest.raises(DialectError, match="ucspi-tcp-ipv6"):
            rules.check(ip, host, info)
    else:
        assert rules.check(ip, host, info) == got
    assert tcprulescheck_text(got) == want.stdout, conn
    # tcprulescheck says "deny" exactly when a D item exists; its first
    # line names the key.
    assert got.allowed == (not want.stdout.endswith(b"deny connection\n"))
    first = want.stdout.split(b"\n", 1)[0]
    assert first == (b"default:" if got.key is None else b"rule " + got.key + b":")
    return got


@given(scenarios())
def test_compiled_rules_match_tcprulescheck(tmp_path: Path, scenario: tuple) -> None:
    text, conns = scenario
    path = tmp_path / "rules.cdb"
    compile_rules(text, path)
    with RuleSet(path) as rules:
        for conn in conns:
            agree(path, rules, conn)


# ---- hand-made databases -----------------------------------------------------


@given(handmade())
def test_handmade_files_match_tcprulescheck(tmp_path: Path, case: tuple) -> None:
    records, conns = case
    path = tmp_path / "rules.cdb"
    write_cdb(path, records)
    with RuleSet(path) as rules:
        for conn in conns:
            got = agree(path, rules, conn)
            if got.key is not None:  # the first record for the key decides
                assert got.data == next(d for k, d in records if k == got.key)


def test_every_key_in_order(tmp_path: Path) -> None:
    """Each key of the order, alone in a file with the keys after it,
    decides; a key that comes later never does while an earlier exists."""
    conn = (b"10.1.2.3", b"mx.mail.example.com", b"joe")
    keys = candidate_keys(*conn)
    assert keys == [
        b"joe@10.1.2.3",
        b"joe@=mx.mail.example.com",
        b"10.1.2.3",
        b"=mx.mail.example.com",
        b"10.1.2.",
        b"10.1.",
        b"10.",
        b"=.mail.example.com",
        b"=.example.com",
        b"=.com",
        b"=",
        b"",
    ]
    path = tmp_path / "rules.cdb"
    for i, key in enumerate(keys):
        # Later keys first in the file, so file order cannot decide.
        write_cdb(path, [(k, b"+N=%d\0" % j) for j, k in enumerate(keys) if j >= i][::-1])
        with RuleSet(path) as rules:
            got = agree(path, rules, conn)
        assert got.key == key and got.env == {"N": str(i)}
    write_cdb(path, [(b"unrelated", b"D\0")])
    with RuleSet(path) as rules:
        assert agree(path, rules, conn) == (None, b"")


# ---- the reading of the data (tcpserver's found()) ---------------------------


@pytest.mark.parametrize(
    ("data", "allowed", "env"),
    [
        (b"", True, {}),
        (b"D\0", False, {}),
        (b"D", True, {}),  # no NUL ends it: not an item
        (b"+A=1\0D", True, {"A": "1"}),
        (b"Dx\0", False, {}),  # any item starting with D
        (b"+A=1\0D\0+B=2\0", False, {"A": "1", "B": "2"}),  # tcpserver reads on
        (b"+A=1\0+B=2\0+A=3\0", True, {"B": "2", "A": "3"}),  # later wins, moves
        (b"+NOEQ\0+=v\0+C=x=y\0", True, {"": "v", "C": "x=y"}),
        (b"X\0\0-A=1\0+D=\0", True, {"D": ""}),
        (b"+A=\xff\0", True, {"A": "\udcff"}),
    ],
)
def test_found(data: bytes, allowed: bool, env: dict[str, str]) -> None:
    d = Decision(b"k", data)
    assert d.allowed is allowed
    assert d.env == env and list(d.env) == list(env)


def test_default_decision(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"1.2.3.4", b"D\0")])
    d = RuleSet(path).check("5.6.7.8", "h.example", "joe")
    assert d.key is None and d.rule is None and d.data == b""
    assert d.allowed and d.env == {}
    assert d == (None, b"")


# ---- arguments and text ---------------------------------------------------------


def test_arguments(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    compile_rules('=bücher.example:allow,GRÜSSE="hallo"\n1.2.3.4:deny\n'.encode(), path)
    rules = RuleSet(path)
    d = rules.check("9.9.9.9", "bücher.example")
    assert d.rule == "=bücher.example" and d.env == {"GRÜSSE": "hallo"}
    assert rules.check(b"9.9.9.9", b"b\xc3\xbccher.example") == d
    assert rules.check(bytearray(b"1.2.3.4")).rule == "1.2.3.4"
    assert rules.check(memoryview(b"1.2.3.4")).rule == "1.2.3.4"
    for bad in ("1.2.3.4\0", b"1.2\0"):
        with pytest.raises(ValueError, match="NUL"):
            rules.check(bad)
        with pytest.raises(ValueError, match="NUL"):
            rules.check("1.2.3.4", bad)
        with pytest.raises(ValueError, match="NUL"):
            rules.check("1.2.3.4", None, bad)
    with pytest.raises(TypeError):
        rules.check(1234)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rules.check("1.2.3.4", 5)  # type: ignore[arg-type]


def test_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"=\xff.example", b"+N\xe9=v\xff\0")])
    rules = RuleSet(path)
    d = rules.check(b"9.9.9.9", b"\xff.example")
    assert d.rule == "=\udcff.example"
    assert d.rule.encode("utf-8", "surrogateescape") == d.key == b"=\xff.example"
    assert d.env == {"N\udce9": "v\udcff"}
    # The same host given as str (surrogateescape) finds the same rule.
    assert rules.check("9.9.9.9", "\udcff.example") == d


def test_long_arguments(tmp_path: Path) -> None:
    """Keys longer than the C core's stack buffer take the heap path."""
    host = b".".join([b"label%d" % i for i in range(200)])
    info = b"u" * 3000
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(info + b"@=" + host, b"+LONG=1\0"), (b"=.label199", b"+SUFFIX=1\0")])
    rules = RuleSet(path)
    assert rules.check("1.2.3.4", host, info).env == {"LONG": "1"}
    assert rules.check("1.2.3.4", host).rule == "=.label199"
    assert rules.check("1.2.3.4", host, b"u" * 2999).env == {"SUFFIX": "1"}


def test_huge_record_is_not_copied_twice(tmp_path: Path) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"", b"+BIG=" + b"x" * (4 << 20) + b"\0")])
    d = RuleSet(path).check("1.2.3.4")
    assert len(d.data) == 5 + (4 << 20) + 1 and len(d.env["BIG"]) == 4 << 20


# ---- corrupt files ---------------------------------------------------------------


def _both(path: Path, conn: Conn) -> list[object]:
    """What each backend makes of a check: a Decision or the error."""
    outcomes: list[object] = []
    for name in _backend.available():
        with _backend.use(name):
            try:
                outcomes.append(RuleSet(path).check(*conn))
            except pycdb.CorruptError as exc:
                outcomes.append((str(exc), exc.offset))
    return outcomes


def _slot_of(buf: bytes, key: bytes) -> int:
    """Offset of the hash slot that holds key's record."""
    h = pycdb.hash(key)
    pos, slots = struct.unpack_from("<II", buf, 8 * (h & 255))
    for s in range(slots):
        where = pos + 8 * (((h >> 8) % slots + s) % slots)
        sh, rec = struct.unpack_from("<II", buf, where)
        if sh == h and buf[rec + 8 : rec + 8 + len(key)] == key:
            return where
    raise AssertionError(key)


@pytest.mark.parametrize("where", [1, 2047, 10**6, 2**32 - 1])
def test_corrupt_slot_same_error_in_both_backends(tmp_path: Path, where: int) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"%d" % i, b"+N=%d\0" % i) for i in range(50)] + [(b"1.2.3.", b"D\0")])
    buf = bytearray(path.read_bytes())
    struct.pack_into("<I", buf, _slot_of(bytes(buf), b"1.2.3.") + 4, where)
    path.write_bytes(buf)
    with pytest.raises(pycdb.CorruptError, match="corrupt cdb"):
        RuleSet(path).check("1.2.3.4")
    outcomes = _both(path, (b"1.2.3.4", None, None))
    assert all(o == outcomes[0] for o in outcomes)


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8))
def test_damaged_files_same_outcome_in_both_backends(
    tmp_path: Path, damage: list[tuple[int, int]]
) -> None:
    path = tmp_path / "rules.cdb"
    records = [(b"10.%d." % i, b"+N=%d\0" % i) for i in range(30)]
    records += [(b"=.example.com", b"D\0"), (b"joe@10.1.2.3", b"\0"), (b"", b"+Z=1\0")]
    write_cdb(path, records)
    buf = bytearray(path.read_bytes())
    for offset, value in damage:
        # Mostly past the header, where a lookup meets it mid-walk.
        buf[2048 + offset % (len(buf) - 2048) if offset % 7 else offset % len(buf)] = value
    path.write_bytes(buf)
    for conn in [(b"10.5.6.7", b"mx.example.com", b"joe"), (b"10.1.2.3", None, b"joe")]:
        outcomes = _both(path, conn)
        assert all(o == outcomes[0] for o in outcomes), outcomes
