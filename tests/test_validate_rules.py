"""Rules-level validation: the key forms tcprules can produce (checked
against the real tcprules, exhaustively for short keys), the rules
findings on hand-made databases, the recognition heuristic, and
soundness of every file tcprules writes."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
from helpers import FIXTURES, ref, run_ref
from hypothesis import assume, example, given
from hypothesis import strategies as st
from rules_helpers import GOOD_RULES, write_cdb

import pycdb
from pycdb.errors import LineRefused
from pycdb.findings import Finding
from pycdb.rules import forms, soundness
from pycdb.rules.language import expand


def tcprules(
    tmp_path: Path, text: bytes, name: str = "t.cdb"
) -> subprocess.CompletedProcess[bytes]:
    out = tmp_path / name
    return subprocess.run(
        [ref("tcprules"), str(out), str(out) + ".tmp"], input=text, capture_output=True, timeout=60
    )


def records_of(path: Path) -> list[tuple[bytes, bytes]]:
    with pycdb.Reader(path) as r:
        return list(r.items())


# ---- key forms, against the real tcprules ------------------------------------------

_ALPHABET = [bytes([c]) for c in b"015.-=@#a"]


def _addresses(longest: int) -> list[bytes]:
    """Every address over a small alphabet up to ``longest`` bytes that
    tcprules accepts (pycdb's expand is pinned to tcprules elsewhere)."""
    out = []
    for n in range(longest + 1):
        for parts in itertools.product(_ALPHABET, repeat=n):
            address = b"".join(parts)
            if address[:1] == b"#":
                continue  # a comment line
            try:
                expand(address)
            except LineRefused:
                continue
            out.append(address)
    return out


def test_key_forms_exhaustively(tmp_path: Path) -> None:
    """For every key of up to 3 bytes over the alphabet (plus ':' and
    newline): key_problem says None exactly when tcprules produces it.
    Addresses of up to 5 bytes produce every producible key that short
    (a one-key range P N-N S is two bytes longer than its key), so the
    set tcprules writes for them is the whole truth for these keys."""
    addresses = _addresses(5)
    done = tcprules(tmp_path, b"".join(a + b":allow\n" for a in addresses))
    assert done.returncode == 0, done.stderr
    produced = {k for k, _ in records_of(tmp_path / "t.cdb")}
    assert all(forms.key_problem(k) is None for k in produced)
    extra = [b":", b"\n"]
    keys = [b"".join(p) for n in range(4) for p in itertools.product(_ALPHABET + extra, repeat=n)]
    possible = [k for k in keys if forms.key_problem(k) is None]
    assert {k for k in keys if k in produced} == set(possible)
    # ... and address_of gives each one, alone, with its own data.
    text = b"".join(forms.address_of(k) + b':allow,N="%d"\n' % i for i, k in enumerate(possible))
    done = tcprules(tmp_path, text, "back.cdb")
    assert done.returncode == 0, done.stderr
    assert records_of(tmp_path / "back.cdb") == [
        (k, b"+N=%d\0" % i) for i, k in enumerate(possible)
    ]


@pytest.mark.parametrize(
    ("key", "possible"),
    [
        (b"", True),
        (b" 1.2.3.4\t", True),  # blanks stay part of the address
        (b"1.2.3.4-5", True),  # as the range 1.2.3-3.4-5
        (b"1.2.3-x", True),  # 1.2-2.3-x
        (b"a.1-2", False),  # no number field before the '-'
        (b"5-", False),
        (b"-", False),
        (b"01.2-3", False),  # a range writes 1, never 01
        (b"256.2-3", False),  # ... and never above 255
        (b"=a-b", True),  # '=' and '@' addresses are never ranges
        (b"x@1-2", True),
        (b"#1.2", False),
        (b"1:2", False),
        (b"1\n2", False),
        (b"1.2.3.4\x00-5", True),  # 1.2.3-3.4<NUL>-5
        (b"\x00.1-2", False),
        (b"0.1-2", True),
    ],
)
def test_key_forms(tmp_path: Path, key: bytes, possible: bool) -> None:
    assert (forms.key_problem(key) is None) is possible
    if possible:
        address = forms.address_of(key)
        assert tcprules(tmp_path, address + b":deny\n").returncode == 0
        assert records_of(tmp_path / "t.cdb") == [(key, b"D\0")]
    else:
        with pytest.raises(ValueError):
            forms.address_of(key)


_key_bytes = st.lists(st.sampled_from(list(b"0123456789.-=@ax\x00 ")), max_size=14).map(bytes)


@given(key=_key_bytes)
@example(key=b"255.255.1-")
@example(key=b"9.-")
def test_address_of_against_tcprules(tmp_path: Path, key: bytes) -> None:
    """Longer keys than the exhaustive test: what address_of writes,
    tcprules turns into exactly the key."""
    if forms.key_problem(key) is not None:
        return
    done = tcprules(tmp_path, forms.address_of(key) + b":allow\n")
    assert done.returncode == 0, done.stderr
    assert [k for k, _ in records_of(tmp_path / "t.cdb")] == [key]


# ---- what tcprules writes is sound ---------------------------------------------------


@given(text=GOOD_RULES)
@example(text=(FIXTURES / "rules" / "ranges.rules").read_bytes())
def test_tcprules_files_are_sound(tmp_path: Path, text: bytes) -> None:
    done = tcprules(tmp_path, text)
    assume(done.returncode == 0)
    path = tmp_path / "t.cdb"
    for rules in (None, True):
        report = soundness.validate_rules(path, rules=rules)
        assert report.sound, report.findings
        assert report.canonical, report.layout_note
    report = soundness.validate_rules(path)
    records = records_of(path)
    assert report.records == len(records)
    has_items = any(d[:1] in (b"D", b"+") for _, d in records)
    assert report.kind == ("tcprules" if has_items else "cdb")


def test_fixtures_are_sound() -> None:
    for path in sorted((FIXTURES / "rules").glob("*.cdb")):
        report = soundness.validate_rules(path)
        assert report.sound and report.canonical and report.kind == "tcprules", path


# ---- rules findings --------------------------------------------------------------------

GOOD = [(b"127.0.0.1", b"+RELAYCLIENT=\0"), (b"10.", b"D\0"), (b"", b"")]


def findings(path: Path, **kw: object) -> list[Finding]:
    return soundness.validate_rules(path, **kw).findings  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "reason", "at"),
    [
        (b"x\0", "an item starting with byte 0x78", 0),
        (b"x", "does not end with a NUL", 1),
        (b"D", "starts with 'D' but not with the 'D\\0'", 0),
        (b"+A=1", "does not end with a NUL", 4),
        (b"D\0D\0", "a second 'D' item", 2),
        (b"+A\0", "has no '='", 0),
        (b"+A=\n\0", "newline", 3),
        (b"\0", "an empty item", 0),
    ],
)
def test_bad_data(tmp_path: Path, data: bytes, reason: str, at: int) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, [*GOOD, (b"1.2.3.4", data)])
    report = soundness.validate_rules(path)
    assert report.kind == "tcprules" and not report.sound
    (f,) = report.findings
    pos = 2048 + sum(8 + len(k) + len(d) for k, d in GOOD)
    assert (f.code, f.offset, f.key) == ("rules-data", pos, b"1.2.3.4")
    assert reason in f.message and "'1.2.3.4'" in f.message
    assert f"data byte {at}, file offset {pos + 8 + 7 + at}" in f.message
    # The structure alone is fine.
    assert soundness.validate_rules(path, rules=False).sound


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (b"a:b", "contains ':'"),
        (b"a\nb", "newline"),
        (b"#x", "starts with '#'"),
        (b"mail-1.example.com", "only a range line can produce it"),
        (b"01.x-5", "only a range line"),
    ],
)
def test_bad_keys(tmp_path: Path, key: bytes, reason: str) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, [*GOOD, (key, b"D\0")])
    (f,) = findings(path)
    assert (f.code, f.key) == ("rules-key", key)
    assert f.offset == 2048 + sum(8 + len(k) + len(d) for k, d in GOOD)
    assert reason in f.message and "no tcprules line can produce" in f.message


def test_ipv6_keys_are_recognised_not_refused(tmp_path: Path) -> None:
    """'::1' is a key only ucspi-tcp-ipv6's tcprules writes: the database
    is recognised as that dialect's, and sound; checked as 0.88's, which
    writes no ':', it is not."""
    path = tmp_path / "r.cdb"
    write_cdb(path, [*GOOD, (b"::1", b"D\0")])
    report = soundness.validate_rules(path)
    assert report.sound and report.dialect == "ucspi-tcp-ipv6"
    assert (
        "recognised as ucspi-tcp-ipv6" in report.dialect_basis and "'::1'" in report.dialect_basis
    )
    (f,) = soundness.validate_rules(path, dialect="ucspi-tcp").findings
    assert (f.code, f.key) == ("rules-key", b"::1") and "contains ':'" in f.message


def test_findings_in_file_order_and_capped(tmp_path: Path) -> None:
    path = tmp_path / "r.cdb"
    records = [
        (b"k:%d" % i if i % 2 else b"%d" % i, b"D\0" if i % 3 else b"junk") for i in range(300)
    ]
    write_cdb(path, [(b"x", b"D\0"), *records])
    report = soundness.validate_rules(path, rules=True, limit=50)
    assert len(report.findings) == 50 and not report.sound
    bad = sum(1 for k, d in records if b":" in k) + sum(1 for k, d in records if d == b"junk")
    assert report.suppressed == bad - 50
    offsets = [f.offset for f in report.findings]
    assert offsets == sorted(offsets)
    # A record with both problems gets both findings, data first.
    both = [f for f in report.findings if f.key == b"k:3"]
    assert [f.code for f in both] == ["rules-data", "rules-key"]


def test_structure_first(tmp_path: Path) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, [*GOOD, (b"a:b", b"D\0")])
    path.write_bytes(path.read_bytes() + b"junk")
    codes = [f.code for f in findings(path)]
    assert codes == ["leftover", "rules-key"]


# ---- recognising a tcprules database -----------------------------------------------------


def test_recognised(tmp_path: Path) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, GOOD)
    report = soundness.validate_rules(path)
    assert report.kind == "tcprules" and "recognised" in report.kind_basis
    assert "3 of 3 records" in report.kind_basis


def test_damaged_rules_still_recognised(tmp_path: Path) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, [*GOOD, (b"1.2.3.4", b"garbage"), (b"a:b", b"D\0")])
    report = soundness.validate_rules(path)
    assert report.kind == "tcprules"
    assert [f.code for f in report.findings] == ["rules-data", "rules-key"]


def test_other_cdb_not_flagged(tmp_path: Path) -> None:
    """A qmail users/cdb-like file, or /etc/services as a cdb: sound, no
    rules findings, and the report says why it was not taken for rules;
    --rules finds the records that are not rules."""
    path = tmp_path / "o.cdb"
    records = [(b"!user%d-" % i, b"user%d\0%d\0%d\0/home/u\0-\0\0" % (i, i, i)) for i in range(200)]
    records += [(b"+odd", b"+A=1\0"), (b"empty", b"")]
    write_cdb(path, records)
    report = soundness.validate_rules(path)
    assert report.sound and report.kind == "cdb" and not report.findings
    assert "not recognised" in report.kind_basis and "--rules" in report.kind_basis
    forced = soundness.validate_rules(path, rules=True, limit=10_000)
    assert forced.kind == "tcprules" and "--rules" in forced.kind_basis
    assert len([f for f in forced.findings if f.code == "rules-data"]) == 200
    assert len([f for f in forced.findings if f.code == "rules-key"]) == 200  # 'user1-'


def test_key_set_not_recognised(tmp_path: Path) -> None:
    path = tmp_path / "s.cdb"
    write_cdb(path, [(b"word-%d" % i, b"") for i in range(20)])
    report = soundness.validate_rules(path)
    assert report.sound and report.kind == "cdb" and "empty" in report.kind_basis
    assert len(soundness.validate_rules(path, rules=True).findings) == 20


def test_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, [*GOOD, (b"a:b", b"x")])
    report = soundness.validate_rules(path, rules=False)
    assert report.sound and report.kind == "cdb" and "--no-rules" in report.kind_basis


def test_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "e.cdb"
    assert tcprules(tmp_path, b"", "e.cdb").returncode == 0
    report = soundness.validate_rules(path)
    assert report.sound and report.canonical and report.records == 0 and report.kind == "cdb"
    assert soundness.validate_rules(path, rules=True).sound


def test_data_problem_agrees_with_decode() -> None:
    from pycdb.errors import DataError
    from pycdb.rules.data import decode

    for data in (b"", b"D\0", b"+A=1\0", b"x", b"+A=\0\0"):
        err = soundness.data_problem(data)
        try:
            decode(data)
        except DataError as exc:
            assert err is not None and str(err) == str(exc)
        else:
            assert err is None


def test_cdbmake_file_with_rules_data(tmp_path: Path) -> None:
    """A rules database made by hand with cdbmake is a rules database."""
    text = b"+3,2:1.2->D\0\n+0,0:->\n\n"
    done = run_ref("cdbmake", str(tmp_path / "m.cdb"), str(tmp_path / "m.tmp"), input=text)
    assert done.returncode == 0
    report = soundness.validate_rules(tmp_path / "m.cdb")
    assert report.sound and report.kind == "tcprules" and report.canonical
