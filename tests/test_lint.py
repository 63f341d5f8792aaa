"""pycdb.rules.lint: the findings the golden transcripts cannot show
(stale databases, damaged tables, NUL bytes in text), the library API,
and properties on generated rules: lint never crashes, raises no error
for rules that grant no RELAYCLIENT, and every relay a client with an
unlisted address can get is reported as an error (checked against
RuleSet, tcpserver's lookup), and every such error is real.

Every database lint reads here is made by the real tcprules
(``compile_rules``, ``tcprules_bytes``), then damaged by hand where a test
says so, except in the test that feeds lint arbitrary records and their
damaged copies on purpose (``hand_made``, which uses pycdb's Writer: no
tcprules text gives arbitrary data)."""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers import FIXTURES, child_env, python, ref, run_ref
from hypothesis import given
from hypothesis import strategies as st
from rules_helpers import compile_rules, scenarios, write_cdb

import pycdb
from pycdb.findings import Finding
from pycdb.rules import RuleSet
from pycdb.rules.language import expand, parse, parse_line, range_bounds
from pycdb.rules.lint import CODES, LintReport, detect, lint, lint_cdb, lint_text

RULES = FIXTURES / "rules"


def messages(report: LintReport) -> list[str]:
    return [f.format(report.name) for f in report.findings]


def tcprules_bytes(text: bytes) -> bytes:
    """The database the real tcprules makes of ``text``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.cdb"
        compile_rules(text, path)
        return path.read_bytes()


def hand_made(records: list[tuple[bytes, bytes]]) -> bytes:
    """The bytes of a cdb holding ``records``, made by hand (pycdb's
    Writer): for data tcprules never writes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.cdb"
        write_cdb(path, records)
        return path.read_bytes()


# ---- detection -------------------------------------------------------------------


def test_detect_by_content(tmp_path: Path) -> None:
    assert detect(RULES / "tcp.smtp") == "text"
    assert detect(RULES / "tcp.smtp.cdb") == "cdb"
    # A cdb under any name is a cdb; long text is text.
    renamed = tmp_path / "rules-db"
    renamed.write_bytes((RULES / "tcp.smtp.cdb").read_bytes())
    assert detect(renamed) == "cdb"
    long_text = tmp_path / "long.cdb.txt"
    long_text.write_bytes(b"10.0.0.1:allow\n" * 500)
    assert detect(long_text) == "text"
    # A file named *.cdb that is no cdb is a damaged cdb, not text.
    (tmp_path / "empty.cdb").write_bytes(b"")
    (tmp_path / "short.cdb").write_bytes(b":allow\n")
    assert detect(tmp_path / "empty.cdb") == "cdb"
    assert detect(tmp_path / "short.cdb") == "cdb"
    (tmp_path / "empty").write_bytes(b"")
    assert detect(tmp_path / "empty") == "text"


#: Run in a process of its own (a file that hangs or never ends fails the
#: test by its timeout instead of stopping the run): every way into lint
#: with a FIFO that has no writer and with /dev/zero.
DEVICES = """
import errno, sys
from pycdb.rules.lint import detect, lint, lint_cdb, lint_text
fifo = sys.argv[1]
assert detect(fifo) == "text"
report = lint(fifo)
assert (report.kind, [f.code for f in report.findings]) == ("text", ["empty"]), report
assert [f.code for f in lint_cdb(fifo).findings] == ["corrupt"]
assert [f.code for f in lint_text(fifo).findings] == ["empty"]
calls = [detect, lint, lint_cdb, lint_text, lambda path: lint_text(b":allow", cdb=path)]
for call in calls:
    try:
        call("/dev/zero")
    except OSError as exc:
        assert exc.errno == errno.EINVAL and exc.filename == "/dev/zero", exc
    else:
        raise AssertionError(call)
print("ok")
"""


def test_fifos_and_devices(tmp_path: Path) -> None:
    """A FIFO with no writer reads as empty, a device is refused: lint
    reads every file through pycdb._files."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = subprocess.run(
        python("-c", DEVICES, str(fifo)), capture_output=True, timeout=30, env=child_env()
    )
    assert (done.stdout, done.stderr) == (b"ok\n", b"")


def test_lint_reads_the_file_once() -> None:
    """What lint tells the kind from is what it lints: a pipe works."""
    script = (
        "from pycdb.rules.lint import lint; r = lint('/dev/stdin'); "
        "print(r.kind, r.records, [f.code for f in r.findings])"
    )
    for name, kind in (("tcp.smtp", "text"), ("tcp.smtp.cdb", "cdb")):
        done = subprocess.run(
            python("-c", script),
            input=(RULES / name).read_bytes(),
            capture_output=True,
            timeout=30,
            env=child_env(),
        )
        assert done.stdout.decode() == (
            f"{kind} 272 ['relay-by-name', 'relay-by-name', 'ident-relay']\n"
        ), done.stderr


def test_lint_follows_detection_and_kind(tmp_path: Path) -> None:
    assert lint(RULES / "tcp.smtp").kind == "text"
    assert lint(RULES / "tcp.smtp.cdb").kind == "cdb"
    # Forced: the cdb read as text is garbage lines, the text as a cdb is corrupt.
    assert lint(RULES / "tcp.smtp", kind="cdb").findings[0].code == "corrupt"
    assert lint(RULES / "tcp.smtp.cdb", kind="text").kind == "text"
    with pytest.raises(ValueError):
        lint(RULES / "tcp.smtp.cdb", cdb=RULES / "tcp.smtp.cdb")
    with pytest.raises(FileNotFoundError):
        lint(tmp_path / "missing")


def test_text_and_cdb_agree_on_the_fixture() -> None:
    text = lint(RULES / "tcp.smtp")
    db = lint(RULES / "tcp.smtp.cdb")
    assert [(f.code, f.key) for f in text.findings] == [(f.code, f.key) for f in db.findings]
    assert [f.code for f in text.findings] == ["relay-by-name", "relay-by-name", "ident-relay"]
    assert [f.line for f in text.findings] == [12, 13, 18]
    assert text.records == db.records == 272


# ---- goldens the transcripts cannot hold -----------------------------------------------

TEXT = b'127.0.0.1:allow,RELAYCLIENT=""\n10.0.0.1-3:deny\n:allow\n'


def stale_setup(tmp_path: Path, db_text: bytes, text: bytes, newer: bool) -> tuple[Path, Path]:
    db = tmp_path / "tcp.smtp.cdb"
    compile_rules(db_text, db)
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(text)
    db_time, text_time = 1_700_000_000, 1_700_000_000 + (3600 if newer else -3600)
    os.utime(db, ns=(db_time * 10**9, db_time * 10**9))
    os.utime(rules, ns=(text_time * 10**9, text_time * 10**9))
    return rules, db


def stale_message(tmp_path: Path, db_text: bytes, text: bytes, newer: bool) -> list[str]:
    rules, db = stale_setup(tmp_path, db_text, text, newer)
    report = lint_text(str(rules), filename="tcp.smtp", cdb=db)
    return [f.format("tcp.smtp") for f in report.findings if f.code in ("stale", "newer-text")]


def test_stale_newer_and_different(tmp_path: Path) -> None:
    edited = TEXT.replace(b"10.0.0.1-3:deny", b'10.0.0.1-3:allow,RELAYCLIENT=""')
    db = tmp_path / "tcp.smtp.cdb"
    assert stale_message(tmp_path, TEXT, edited, newer=True) == [
        f"tcp.smtp: error: {db} is not what tcprules makes of this text, and tcp.smtp was "
        "modified after it (2023-11-14 23:13:20 UTC; the database 2023-11-14 22:13:20 UTC): "
        "the first difference is record 2: the database has '10.0.0.1:deny' where line 2 "
        "gives '10.0.0.1:allow,RELAYCLIENT=\"\"'; rebuild it: tcprules "
        f"{db} {db}.tmp < tcp.smtp [stale]"
    ]


def test_stale_older_but_different(tmp_path: Path) -> None:
    # The database was built from other text, even though it is newer.
    edited = TEXT.replace(b"10.0.0.1-3", b"10.0.0.1-4")
    db = tmp_path / "tcp.smtp.cdb"
    assert stale_message(tmp_path, TEXT, edited, newer=False) == [
        f"tcp.smtp: error: {db} is not what tcprules makes of this text: the first difference "
        "is record 5: the database has ':allow' where line 2 gives '10.0.0.4:deny'; rebuild "
        f"it: tcprules {db} {db}.tmp < tcp.smtp [stale]"
    ]


def test_stale_records_missing_or_extra(tmp_path: Path) -> None:
    longer = TEXT + b"10.0.0.9:deny\n"
    db = tmp_path / "tcp.smtp.cdb"
    assert stale_message(tmp_path, TEXT, longer, newer=False) == [
        f"tcp.smtp: error: {db} is not what tcprules makes of this text: the text gives 6 "
        "records, the database has 5: line 4's '10.0.0.9:deny' is missing from it; rebuild "
        f"it: tcprules {db} {db}.tmp < tcp.smtp [stale]"
    ]
    assert stale_message(tmp_path, longer, TEXT, newer=False) == [
        f"tcp.smtp: error: {db} is not what tcprules makes of this text: the database has 6 "
        "records, the text gives 5: record 6, '10.0.0.9:deny', is not in the text; rebuild "
        f"it: tcprules {db} {db}.tmp < tcp.smtp [stale]"
    ]


def test_stale_when_the_text_does_not_compile(tmp_path: Path) -> None:
    broken = TEXT + b"10.0.0.9:permit\n"
    db = tmp_path / "tcp.smtp.cdb"
    assert stale_message(tmp_path, TEXT, broken, newer=True) == [
        f"tcp.smtp: error: {db} was not compiled from this text: tcprules refuses it (line 4), "
        "and tcp.smtp was modified after it (2023-11-14 23:13:20 UTC; the database "
        "2023-11-14 22:13:20 UTC) [stale]"
    ]


def test_newer_text_with_the_same_bytes_is_an_info(tmp_path: Path) -> None:
    commented = b"# a comment added later\n" + TEXT
    db = tmp_path / "tcp.smtp.cdb"
    assert stale_message(tmp_path, TEXT, commented, newer=True) == [
        "tcp.smtp: info: tcp.smtp was modified after it (2023-11-14 23:13:20 UTC; the "
        f"database 2023-11-14 22:13:20 UTC), but compiles to the same bytes: {db} is up to "
        "date [newer-text]"
    ]
    rules, _ = stale_setup(tmp_path, TEXT, commented, newer=True)
    report = lint_text(str(rules), cdb=db)
    assert report.infos == 1 and report.exit_code(strict=True) == 0


def test_up_to_date_is_silent_and_the_database_untouched(tmp_path: Path) -> None:
    rules, db = stale_setup(tmp_path, TEXT, TEXT, newer=False)
    before = (db.read_bytes(), os.stat(db).st_mtime_ns, sorted(os.listdir(tmp_path)))
    assert lint_text(str(rules), cdb=db).findings == []
    assert (db.read_bytes(), os.stat(db).st_mtime_ns, sorted(os.listdir(tmp_path))) == before


def test_stale_compares_with_any_source(tmp_path: Path) -> None:
    # Bytes have no modification time: only the contents count.
    db = tmp_path / "x.cdb"
    compile_rules(TEXT, db)
    assert lint_text(TEXT, cdb=db).findings == []
    (finding,) = lint_text(TEXT + b"1.2.3.4:deny\n", cdb=db).findings
    assert finding.code == "stale" and "record 6, " not in finding.message
    assert "the text gives 6 records, the database has 5" in finding.message


def test_stale_against_a_database_that_is_no_cdb(tmp_path: Path) -> None:
    db = tmp_path / "x.cdb"
    db.write_bytes(b"not a cdb")
    (finding,) = lint_text(TEXT, filename="t", cdb=db).findings
    assert finding.format("t") == (
        f"t: error: {db} is not what tcprules makes of this text: it is not a readable cdb "
        f"({db}: not a cdb file: 9 bytes, shorter than the 2048-byte header); rebuild it: "
        f"tcprules {db} {db}.tmp < t [stale]"
    )


def test_stale_agrees_with_tcprules(tmp_path: Path) -> None:
    db = tmp_path / "tcp.smtp.cdb"
    text = (RULES / "tcp.smtp").read_bytes()
    done = run_ref("tcprules", str(db), str(db) + ".tmp", input=text)
    assert done.returncode == 0
    assert lint_text(RULES / "tcp.smtp", cdb=db).count("error") == 2  # the relays, no stale


def unindex(path: Path, key: bytes) -> None:
    """Empty the hash-table slot that points at ``key``'s record: lookups
    no longer find it (a damaged file, which tcprules never writes)."""
    buf = bytearray(path.read_bytes())
    h = pycdb.hash(key)
    pos, slots = struct.unpack_from("<II", buf, 8 * (h & 255))
    for s in range(slots):
        at = pos + 8 * s
        sh, sp = struct.unpack_from("<II", buf, at)
        if sh == h and sp:
            struct.pack_into("<II", buf, at, 0, 0)
            path.write_bytes(bytes(buf))
            return
    raise AssertionError("no slot")


def test_unreachable_key(tmp_path: Path) -> None:
    db = tmp_path / "t.cdb"
    compile_rules(b"10.0.0.1:allow\n:allow\n", db)
    unindex(db, b"10.0.0.1")
    assert messages(lint_cdb(db, name="t.cdb")) == [
        "t.cdb: key '10.0.0.1': warning: tcpserver never finds this key: the hash tables do "
        "not lead to its record (the file is damaged; 'pycdb validate' says where) "
        "[unreachable]"
    ]


def test_corrupt_records() -> None:
    buf = bytearray(tcprules_bytes(b"10.0.0.1:allow\n:allow\n"))
    struct.pack_into("<I", buf, 2048 + 4, 10_000)  # the first record's data length: damaged
    (finding,) = lint_cdb(bytes(buf), name="t.cdb").findings
    assert finding.format("t.cdb") == (
        "t.cdb: error: tcpserver cannot read this database (corrupt cdb: the record at offset "
        "2048 (8-byte key, 10000-byte data) runs into the hash tables at 2072): it drops "
        "every connection whose lookup meets the damage, and lint stops here; 'pycdb "
        "validate' lists the damage [corrupt]"
    )


def test_text_with_a_nul_in_a_value() -> None:
    # ,A="1<NUL>D": tcprules writes +A=1\0D\0, and tcpserver reads the 'D'.
    report = lint_text(b'10.0.0.1:allow,A="1\0D"\n:allow,RELAYCLIENT="\0+X=1"\n', filename="t")
    assert messages(report) == [
        "t:1: warning: tcpserver reads this rule as 'deny', not as written "
        "('allow,A=\"1\\x00D\"'): a NUL byte ends a value, and tcpserver reads the bytes after "
        "it as an item of their own (one starting with 'D' denies) [misread-data]",
        't:2: warning: tcpserver reads this rule as \'allow,RELAYCLIENT="",X="1"\', not as '
        "written ('allow,RELAYCLIENT=\"\\x00+X=1\"'): a NUL byte ends a value, and tcpserver "
        "reads the bytes after it as an item of their own (one starting with 'D' denies) "
        "[misread-data]",
        "t:2: error: the default rule (the empty key, used for every client no other rule "
        "matches) grants RELAYCLIENT: qmail-smtpd relays mail for anyone on the Internet (an "
        "open relay); give the default no RELAYCLIENT and grant it by address [open-relay]",
    ]


def test_a_relay_hidden_behind_a_nul_is_found() -> None:
    # No 'RELAYCLIENT=' instruction, but tcpserver sets it all the same.
    report = lint_text(b':allow,X="\0+RELAYCLIENT="\n')
    assert "open-relay" in [f.code for f in report.findings]


def test_deny_anywhere_denies() -> None:
    # tcpserver's found(): an item starting with 'D' denies wherever it stands,
    # so a RELAYCLIENT before it grants nothing.  tcprules writes the 'D' item
    # from a value holding a NUL: +RELAYCLIENT=\0D\0.
    report = lint_cdb(tcprules_bytes(b':allow,RELAYCLIENT="\0D"\n'))
    assert [f.code for f in report.findings] == ["misread-data"]
    report = lint_cdb(tcprules_bytes(b':allow,RELAYCLIENT=""\n'))
    assert [f.code for f in report.findings] == ["open-relay"]


def test_crlf_with_a_comment_too() -> None:
    report = lint_text(b"10.0.0.1:allow # office\r\n:allow\r\n", filename="t")
    assert [(f.line, f.code) for f in report.findings] == [(1, "crlf"), (1, "inline-comment")]
    assert report.findings[0].message.endswith(
        "; the same goes for line 2 (lint judges these lines as if converted)"
    )


def test_many_crlf_lines_are_one_finding() -> None:
    text = b"".join(b"10.0.0.%d:allow\r\n" % i for i in range(1, 10)) + b":allow\r\n"
    (finding,) = lint_text(text).findings
    assert finding.line == 1 and finding.code == "crlf"
    assert finding.message.endswith(
        "; the same goes for lines 2, 3, 4, 5, 6, ... (lint judges these lines as if converted)"
    )


def test_a_byte_order_mark() -> None:
    # tcprules keeps the mark: a first rule never matches, a first comment is skipped.
    (finding,) = lint_text(b"\xef\xbb\xbf127.0.0.1:allow\n:allow\n", filename="t").findings
    assert finding.format("t") == (
        "t:1: warning: '127.0.0.1' never matches: the file starts with a UTF-8 byte order "
        "mark (the bytes EF BB BF), which tcprules keeps as the start of this key; save the "
        "file without it [never-matches]"
    )
    assert lint_text(b"\xef\xbb\xbf# rules\n:allow\n").findings == []


def test_a_range_with_findings_is_reported_once() -> None:
    report = lint_text(b'1-20.:allow,RELAYCLIENT=""\n:allow\n', filename="t")
    # 1. to 20. are public /8s but for 10.: 19 keys, one finding.
    (finding,) = report.findings
    assert finding.code == "broad-relay" and finding.key == b"1."
    assert finding.message.endswith("(and 18 more keys of this range)")


# ---- the API -------------------------------------------------------------------------


def test_finding_format_and_dict() -> None:
    line = Finding("no-colon", "m", "warning", line=3)
    key = Finding("open-relay", "m", "error", key=b"=\xff\n")
    whole = Finding("newer-text", "m", "info")
    assert line.format("f") == "f:3: warning: m [no-colon]"
    assert key.format("f") == "f: key '=\\xff\\x0a': error: m [open-relay]"
    assert whole.format("f") == "f: info: m [newer-text]"
    assert key.as_dict() == {
        "severity": "error",
        "code": "open-relay",
        "line": None,
        "offset": None,
        "key": "=\udcff\n",
        "message": "m",
    }


def test_report_counts_and_exit_codes() -> None:
    report = LintReport("f", "text")
    assert report.summary() == "f: 0 errors, 0 warnings" and report.exit_code(True) == 0
    report.findings.append(Finding("newer-text", "m", "info"))
    assert report.summary() == "f: 0 errors, 0 warnings, 1 info" and report.exit_code(True) == 0
    report.findings.append(Finding("empty", "m", "warning"))
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    report.findings.append(Finding("syntax", "m", "error"))
    assert report.exit_code() == 1
    assert report.summary() == "f: 1 error, 1 warning, 1 info"
    assert report.as_dict()["errors"] == 1


def test_every_code_is_documented() -> None:
    for code, (severity, about) in CODES.items():
        assert re.fullmatch(r"[a-z0-9-]+", code) and severity in ("error", "warning", "info")
        assert about


def test_sources(tmp_path: Path) -> None:
    text = b"10.0.0.1:allow\n10.0.0.1:deny\n"
    path = tmp_path / "r"
    path.write_bytes(text)
    expected = [f.code for f in lint_text(text).findings]
    assert expected == ["duplicate-key", "no-default"]
    assert [f.code for f in lint_text(str(path)).findings] == expected
    assert [f.code for f in lint_text(io.BytesIO(text)).findings] == expected
    assert [f.code for f in lint_text(["10.0.0.1:allow", b"10.0.0.1:deny"]).findings] == expected
    assert lint_text(io.BytesIO(text)).name == "<file>"


def test_paranoid_keeps_open_relays() -> None:
    text = b'=.com:allow,RELAYCLIENT=""\n=:allow,RELAYCLIENT=""\n:deny\n'
    report = lint_text(text, paranoid=True)
    assert [(f.severity, f.code) for f in report.findings] == [
        ("error", "open-relay"),
        ("error", "open-relay"),
    ]


def test_no_false_alarms() -> None:
    # Each of these grants nothing or grants it safely.
    quiet = [
        b':deny,RELAYCLIENT=""',  # a deny rule's environment does nothing
        b'10.0.0.0/8:allow,RELAYCLIENT=""\n:deny',  # never matches: a cidr warning only
        b'=Mail.example.com:allow,RELAYCLIENT=""\n:deny',  # never matches
        b'10.:allow,RELAYCLIENT=""\n127.0.0.1:allow,RELAYCLIENT=""\n:deny',
        b'0.:allow,RELAYCLIENT=""\n:deny',
        b'192.168.:allow,RELAYCLIENT=""\n:deny',
        b'1.2.3.4:allow,RELAYCLIENT=""\n:allow,RELAYCLIENT',  # refused, but no relay
    ]
    for text in quiet:
        report = lint_text(text + b"\n")
        relay = [f for f in report.findings if "relay" in f.code]
        assert relay == [], (text, relay)


# ---- language.py's additions for lint ----------------------------------------------------

ADDRESSES = st.builds(
    lambda a, b, c: a + b"-" + b + c,
    st.sampled_from([b"", b"1.2.3.", b"10.", b"x.", b"1.2."]),
    st.sampled_from([b"", b"0", b"1", b"7", b"255", b"256", b"999", b"18446744073709551617"]),
    st.sampled_from([b"", b".", b".4", b".x-y", b"-"]),
)


@given(st.one_of(ADDRESSES, st.binary(max_size=12)))
def test_range_bounds_agrees_with_expand(address: bytes) -> None:
    try:
        keys = expand(address)
    except Exception:
        with pytest.raises(ValueError):
            range_bounds(address)
        return
    bounds = range_bounds(address)
    if bounds is None:
        assert keys == [address]
        return
    low, high = bounds
    assert len(keys) == max(0, min(high, 255) - low + 1)
    dash = address.find(b"-")
    head = address[: address.rfind(b".", 0, dash) + 1]
    dot = address.find(b".", dash)
    tail = address[dot:] if dot >= 0 else b""
    assert keys == [head + b"%d" % n + tail for n in range(low, min(high, 255) + 1)]


@given(st.lists(st.binary(max_size=30).filter(lambda b: b"\n" not in b), max_size=8))
def test_parse_line_agrees_with_parse(raw_lines: list[bytes]) -> None:
    text = b"\n".join(raw_lines)
    try:
        whole = list(parse(text))
    except pycdb.RulesSyntaxError as exc:
        whole = None
        bad = exc
    rules = []
    for lineno, raw in enumerate(text.split(b"\n"), 1):
        try:
            rule = parse_line(raw, lineno, "<bytes>")
        except pycdb.RulesSyntaxError as exc:
            assert whole is None and (exc.lineno, str(exc)) == (bad.lineno, str(bad))
            return
        if rule is not None:
            rules.append(rule)
    assert rules == whole


# ---- properties -------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        b"1.2.3.4",
        b"10.",
        b":",
        b"allow",
        b"deny",
        b',A="x"',
        b',RELAYCLIENT=""',
        b"=",
        b"@",
        b"-",
        b"300",
        b"9-1",
        b"/8",
        b"::1",
        b"\0",
        b"#",
        b" # c",
        b"\r",
        b" ",
        b"=Mx.",
        b".com",
        b",",
        b"'",
        b"D",
        b"+",
        b"*",
        b"\xff",
    ]
)
TEXTS = st.one_of(
    st.binary(max_size=200),
    st.lists(st.lists(FRAGMENTS, max_size=8).map(b"".join), max_size=10).map(b"\n".join),
)


@given(TEXTS, st.booleans())
def test_lint_text_never_crashes(text: bytes, paranoid: bool) -> None:
    report = lint_text(text, paranoid=paranoid)
    for f in report.findings:
        assert f.code in CODES and f.format("x")
    assert report.exit_code() in (0, 1)


KEYS = st.sampled_from(
    [
        b"",
        b"=",
        b"=.com",
        b"=a.example.com",
        b"=.example.com",
        b"1.2.3.4",
        b"1.2.3.",
        b"62.",
        b"joe@1.2.3.4",
        b"joe@=a.example.com",
        b"=A.b",
        b"10.0.0.0/8",
        b"x y",
        b"\xff",
        b"::1",
    ]
)
ITEMS = st.sampled_from(
    [
        b"D",
        b"+RELAYCLIENT=",
        b"+RELAYCLIENT=1",
        b"+RELAYCLIENT",
        b"+ RELAYCLIENT=",
        b"+A=1",
        b"+=",
        b"X",
        b"",
        b"Dx",
    ]
)
DATA = st.one_of(
    st.tuples(st.lists(ITEMS, max_size=4), st.booleans()).map(
        lambda t: b"\0".join(t[0]) + (b"\0" if t[1] else b"")
    ),
    st.binary(max_size=12),
)
RECORDS = st.lists(st.tuples(KEYS, DATA), max_size=10)


@given(RECORDS, st.binary(max_size=64), st.integers(0, 5000))
def test_lint_cdb_never_crashes(records: list[tuple[bytes, bytes]], junk: bytes, at: int) -> None:
    good = hand_made(records)  # any data, not only tcprules', and damaged copies
    report = lint_cdb(good)
    assert all(f.code in CODES for f in report.findings)
    assert "corrupt" not in [f.code for f in report.findings]
    # Damaged copies: corrupt or not, never an exception.
    damaged = good[:at] + junk + good[at + len(junk) :]
    for data in (damaged, good[:at], junk):
        report = lint_cdb(data)
        assert all(f.code in CODES for f in report.findings)


#: A client whose address no generated rule mentions (the rules use the
#: octets 0, 1, 2, 10, 127 and 255 only).
UNLISTED = "192.0.2.77"
_REAL_HOST = re.compile(rb"[a-z0-9_-]+(\.[a-z0-9_-]+)*\Z")


def relays(rules: RuleSet, host: bytes | None, info: bytes | None) -> bool:
    decision = rules.check(UNLISTED, host, info)
    return decision.allowed and "RELAYCLIENT" in decision.env


def hosts_of(text: bytes) -> list[bytes]:
    """The real-looking host names the rules mention, and one they do not."""
    names = {b"zz.attacker.invalid"}
    for rule in parse(text):
        for key in rule.keys:
            target = key[key.rfind(b"@") + 1 :]
            if target[:1] == b"=" and _REAL_HOST.match(target[1:]):
                names.add(target[1:])
    return sorted(names)


@given(scenarios())
def test_every_relay_open_to_strangers_is_an_error(
    tmp_path_factory: pytest.TempPathFactory, scenario: tuple[bytes, list[tuple]]
) -> None:
    text, conns = scenario
    path = tmp_path_factory.mktemp("lint") / "rules.cdb"
    compile_rules(text, path)
    errors = {(f.code, f.key) for f in lint_text(text).findings if f.severity == "error"}
    db_errors = {(f.code, f.key) for f in lint_cdb(path).findings if f.severity == "error"}
    assert errors == db_errors
    infos = sorted({c[2] for c in conns if c[2] is not None} | {b"joe"})
    with RuleSet(path, reload_interval=float("inf")) as rules:
        # Complete: a stranger who can relay is reported.
        for host in [None, *hosts_of(text)]:
            for info in [None, *infos]:
                if relays(rules, host, info):
                    assert {c for c, _ in errors} & {"open-relay", "relay-by-name"}, (host, info)
        # Sound: each reported relay is one a stranger can get.
        for _code, key in errors:
            assert key is not None
            if key == b"":
                assert relays(rules, None, None)
            elif key == b"=":
                assert relays(rules, b"zz.attacker.invalid", None)
            elif key[:2] == b"=.":
                assert relays(rules, b"zz-attacker" + key[1:], None)
            elif key[:1] == b"=":
                assert relays(rules, key[1:], None)
            else:
                user, _, host = key.rpartition(b"@=")
                assert relays(rules, host, user)


@given(scenarios())
def test_no_relayclient_no_error(scenario: tuple[bytes, list[tuple]]) -> None:
    text = scenario[0].replace(b"RELAYCLIENT", b"RBLSMTPD")
    report = lint_text(text)
    assert report.errors == 0, messages(report)
    assert lint_cdb(tcprules_bytes(text)).errors == 0


@given(scenarios())
def test_compiled_bytes_match_tcprules(
    tmp_path_factory: pytest.TempPathFactory, scenario: tuple[bytes, list[tuple]]
) -> None:
    ref("tcprules")
    text = scenario[0]
    db = tmp_path_factory.mktemp("stale") / "rules.cdb"
    assert run_ref("tcprules", str(db), str(db) + ".tmp", input=text).returncode == 0
    assert [f.code for f in lint_text(text, cdb=db).findings if f.code == "stale"] == []


REFUSALS = {"syntax", "crlf", "inline-comment", "indented-comment", "ipv6"}


@given(TEXTS)
def test_refusals_agree_with_tcprules(
    tmp_path_factory: pytest.TempPathFactory, text: bytes
) -> None:
    """lint says tcprules refuses the file exactly when the real tcprules
    does; and the first refused line is the one tcprules names."""
    ref("tcprules")
    db = tmp_path_factory.mktemp("refuse") / "rules.cdb"
    done = run_ref("tcprules", str(db), str(db) + ".tmp", input=text)
    refused = sorted(
        f.line for f in lint_text(text).findings if f.code in REFUSALS and f.severity == "error"
    )
    assert (done.returncode == 100) == bool(refused), (done.stderr, refused)
    if refused:
        lines = text.split(b"\n")
        # (tcprules prints the trimmed line as a C string: up to a NUL)
        shown = lines[refused[0] - 1].rstrip(b" \t").split(b"\0")[0]
        assert done.stderr == b"tcprules: fatal: unable to parse this line: " + shown + b"\n"


# ---- the file as tcpserver's user sees it, and a refused text ------------------


def test_a_database_others_cannot_read(tmp_path: Path) -> None:
    """Mode 0600 (a umask of 077): tcpserver -u reads the rules as its own
    user, once per connection, and drops the connection when it cannot."""
    path = tmp_path / "rules.cdb"
    path.write_bytes(tcprules_bytes(b":allow\n"))
    for mode, found in ((0o644, []), (0o640, ["unreadable-mode"]), (0o600, ["unreadable-mode"])):
        path.chmod(mode)
        report = lint_cdb(path)
        assert [f.code for f in report.findings] == found
    finding = report.findings[0]
    assert finding.severity == "warning" and finding.key is None
    assert finding.message.startswith(
        f"the file's mode is 0600: only its owner (uid {os.getuid()}, gid {os.getgid()}) can "
        "read it, and tcpserver reads the rules as the user it runs as (tcpserver -u)"
    )
    report = lint_cdb(path.read_bytes(), name="x", st=path.stat())
    assert [f.code for f in report.findings] == ["unreadable-mode"]


def test_a_refused_text_is_not_judged_as_a_whole() -> None:
    """tcprules refuses the file, so the old database stays: no 'there are
    no rules, every connection allowed' (nor 'no default rule')."""
    report = lint_text(b"b:nope\n", filename="t")
    assert [f.code for f in report.findings] == ["syntax"]
    assert [f.code for f in lint_text(b"a.b.c.d:nope\n:alow\n", filename="t").findings] == [
        "syntax",
        "syntax",
    ]
    assert [f.code for f in lint_text(b"", filename="t").findings] == ["empty"]


def test_run_script_options(tmp_path: Path) -> None:
    """--no-dns (tcpserver -H) and --no-ident (-R): a rule on a host name
    or an ident answer never fires, and gets that one warning instead of
    its relay findings; address rules and the default are judged as ever."""
    text = b'=.example.com:allow,RELAYCLIENT=""\njoe@10.1.2.3:allow,RELAYCLIENT=""\n:allow\n'
    path = tmp_path / "r.cdb"
    compile_rules(text, path)
    plain = [(f.severity, f.code) for f in lint_text(text).findings]
    assert plain == [("error", "relay-by-name"), ("warning", "ident-relay")]
    for report in (
        lint_text(text, no_dns=True, no_ident=True),
        lint(path, no_dns=True, no_ident=True),
    ):
        assert [f.code for f in report.findings] == ["never-fires", "never-fires"]
    assert [f.code for f in lint_cdb(path, no_dns=True).findings] == ["never-fires", "ident-relay"]
    assert [f.code for f in lint_text(text, no_ident=True).findings] == [
        "relay-by-name",
        "never-fires",
    ]
