"""``pycdb validate``: exit codes, human and JSON output, and every crafted
structural case through the command, on both backends (in-process, so
the backend fixture applies)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES, child_env, script
from rules_helpers import write_cdb
from test_cli_cdbtools import outside
from test_validate import RECORDS, a_table, build, slots_of

from pycdb import cli

Capture = pytest.CaptureFixture[str]


def run(capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = cli.main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: Capture, path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, "--json", *args, str(path))
    assert err == "" and out.endswith("}\n") and out.count("\n") == 1
    return code, json.loads(out)


def crafted(tmp_path: Path, buf: bytes | bytearray) -> Path:
    path = tmp_path / "crafted.cdb"
    path.write_bytes(bytes(buf))
    return path


def test_sound_rules_database(capsys: Capture) -> None:
    path = FIXTURES / "rules" / "tcp.smtp.cdb"
    code, out, err = run(capsys, str(path))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}: 272 records in {path.stat().st_size} bytes; recognised")
    assert lines[1:] == [f"{path}: sound; every record is one tcprules can write"]
    code, report = as_json(capsys, path)
    assert code == 0
    assert report["sound"] and report["canonical"] and report["kind"] == "tcprules"
    assert report["records"] == 272 and report["findings"] == [] and report["suppressed"] == 0
    assert report["file"] == str(path)


def test_sound_plain_cdb(capsys: Capture) -> None:
    path = FIXTURES / "cdb" / "mixed.cdb"
    code, out, _ = run(capsys, str(path))
    assert code == 0 and out.splitlines()[-1] == f"{path}: sound"
    assert "not recognised as a tcprules database" in out


# ---- the crafted structural cases -----------------------------------------------------


def expect(
    capsys: Capture, path: Path, code: str, offset: int | None = None
) -> list[dict[str, Any]]:
    """Exit 100 from both outputs, with a finding ``code`` (at ``offset``)."""
    status, report = as_json(capsys, path)
    assert status == 100 and not report["sound"]
    hits = [f for f in report["findings"] if f["code"] == code]
    assert hits, report["findings"]
    if offset is not None:
        assert offset in [f["offset"] for f in hits]
    status, out, err = run(capsys, str(path))
    assert status == 100 and err == ""
    lines = out.splitlines()
    total = len(report["findings"]) + report["suppressed"]
    assert lines[-1] == f"{path}: NOT sound: {total} problem{'s' if total != 1 else ''}"
    assert len(lines) == 2 + len(report["findings"])
    for f, line in zip(report["findings"], lines[1:]):
        where = f"offset {f['offset']}: " if f["offset"] is not None else ""
        assert line == f"{path}: {where}{f['message']}"
    return hits


@pytest.mark.parametrize("cut", [1, 8, 5000, 2047])
def test_truncated(tmp_path: Path, capsys: Capture, cut: int) -> None:
    buf = build(tmp_path, RECORDS)
    path = crafted(tmp_path, buf[: len(buf) - cut])
    status, report = as_json(capsys, path)
    assert status == 100 and report["findings"][0]["code"] in ("header", "short")


def test_shorter_than_a_header(tmp_path: Path, capsys: Capture) -> None:
    path = crafted(tmp_path, b"\0" * 10)
    (hit,) = expect(capsys, path, "short", 10)
    assert "shorter than the 2048-byte header" in hit["message"]


def test_pointer_past_the_end(tmp_path: Path, capsys: Capture) -> None:
    buf = build(tmp_path, RECORDS)
    off, h, p = next(s for s in slots_of(buf, a_table(buf, 1)) if s[2])
    struct.pack_into("<II", buf, off, h, len(buf) + 100)
    path = crafted(tmp_path, buf)
    (hit,) = expect(capsys, path, "slot", off)
    assert "not the start of a record" in hit["message"]
    expect(capsys, path, "unindexed", p)


def test_header_past_the_end(tmp_path: Path, capsys: Capture) -> None:
    buf = build(tmp_path, RECORDS)
    struct.pack_into("<II", buf, 8 * 7, len(buf) - 8, 4)
    expect(capsys, crafted(tmp_path, buf), "header", 56)


def test_table_without_an_empty_slot(tmp_path: Path, capsys: Capture) -> None:
    buf = build(tmp_path, RECORDS)
    t = a_table(buf, 1)
    (o1, h1, p1), (o2, h2, p2) = slots_of(buf, t)
    full, empty_off = ((h1, p1), o2) if p1 else ((h2, p2), o1)
    struct.pack_into("<II", buf, empty_off, *full)
    path = crafted(tmp_path, buf)
    expect(capsys, path, "full-table", struct.unpack_from("<I", buf, 8 * t)[0])
    expect(capsys, path, "duplicate-slot", max(o1, o2))


def test_slot_hash_disagrees(tmp_path: Path, capsys: Capture) -> None:
    buf = build(tmp_path, RECORDS)
    off, h, p = next(s for s in slots_of(buf, a_table(buf, 1)) if s[2])
    struct.pack_into("<I", buf, off, h ^ 0x100)
    (hit,) = expect(capsys, crafted(tmp_path, buf), "slot-hash", off)
    assert f"record at {p}" in hit["message"] and hit["key"] is not None


def test_record_no_slot_reaches(tmp_path: Path, capsys: Capture) -> None:
    buf = build(tmp_path, RECORDS)
    off, h, p = next(s for s in slots_of(buf, a_table(buf, 1)) if s[2])
    struct.pack_into("<II", buf, off, 0, 0)
    (hit,) = expect(capsys, crafted(tmp_path, buf), "unindexed", p)
    assert "lookups never find it" in hit["message"]


def test_record_behind_an_empty_slot(tmp_path: Path, capsys: Capture) -> None:
    buf = build(tmp_path, RECORDS)
    (o1, h1, p1), (o2, h2, p2) = slots_of(buf, a_table(buf, 1))
    struct.pack_into("<IIII", buf, o1, h2, p2, h1, p1)
    (hit,) = expect(capsys, crafted(tmp_path, buf), "unreachable", p1 or p2)
    assert "lookups never reach it" in hit["message"]


def test_trailing_bytes(tmp_path: Path, capsys: Capture) -> None:
    buf = build(tmp_path, RECORDS) + b"junk"
    (hit,) = expect(capsys, crafted(tmp_path, buf), "leftover", len(buf) - 4)
    assert hit["message"].startswith(f"bytes {len(buf) - 4}..{len(buf)} at the end")


# ---- rules options -------------------------------------------------------------------


def test_rules_options(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, [(b"1.2.3.4", b"D\0"), (b"a:b", b""), (b"x", b"junk")])
    status, report = as_json(capsys, path)
    assert status == 100 and report["kind"] == "tcprules"
    assert [f["code"] for f in report["findings"]] == ["rules-key", "rules-data"]
    assert report["findings"][0]["key"] == "a:b"
    status, report = as_json(capsys, path, "--no-rules")
    assert status == 0 and report["kind"] == "cdb" and report["sound"]
    other = FIXTURES / "cdb" / "mixed.cdb"
    status, report = as_json(capsys, other)
    assert status == 0 and report["kind"] == "cdb"
    status, report = as_json(capsys, other, "--rules")
    assert status == 100 and report["kind"] == "tcprules"
    assert {f["code"] for f in report["findings"]} <= {"rules-key", "rules-data"}


def test_limit(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "r.cdb"
    write_cdb(path, [(b"x", b"D\0")] + [(b"k:%d" % i, b"") for i in range(20)])
    status, out, _ = run(capsys, "--limit", "3", str(path))
    lines = out.splitlines()
    assert status == 100 and len(lines) == 5
    assert lines[-1] == f"{path}: NOT sound: 20 problems (17 not shown: --limit keeps more)"
    status, report = as_json(capsys, path, "--limit=5")
    assert len(report["findings"]) == 5 and report["suppressed"] == 15
    # Not numbers (or not numbers int() takes): usage errors, no internal error.
    for bad in ("0", "x", "\u00b2", "9" * 5000, "-3"):
        status, out, err = run(capsys, "--limit", bad, str(path))
        assert (status, out) == (100, ""), bad
        assert err.endswith("(--limit takes a number from 1 up)\n"), err


def test_json_findings(tmp_path: Path, capsys: Capture) -> None:
    """Each finding as pycdb.findings.Finding.as_dict writes one: its key
    UTF-8 text, a byte that is not UTF-8 a lone surrogate
    (``surrogateescape`` gives the bytes back), as ``pycdb check`` and
    ``pycdb lint`` write keys."""
    path = tmp_path / "r.cdb"
    odd, utf8 = b"\xff\x00:", "café:".encode()
    write_cdb(path, [(b"x", b"D\0"), (odd, b""), (utf8, b"")])
    _, report = as_json(capsys, path)
    first, second = report["findings"]
    assert first["key"].encode("utf-8", "surrogateescape") == odd
    assert second["key"] == "café:"
    assert set(first) == {"severity", "code", "line", "offset", "key", "message"}
    assert (first["severity"], first["line"], first["code"]) == ("error", None, "rules-key")


def test_keys_in_messages_are_shown_as_text(tmp_path: Path, capsys: Capture) -> None:
    """A key in a message is UTF-8 where it decodes, every other byte and
    every control byte escaped (pycdb._text.quote), as lint shows keys."""
    path = tmp_path / "r.cdb"
    write_cdb(path, [(b"x", b"D\0"), ("café:\n".encode() + b"\xff", b"")])
    code, out, _ = run(capsys, str(path))
    assert code == 100
    assert "has the key 'café:\\x0a\\xff', which no tcprules line can produce" in out


# ---- errors and usage -------------------------------------------------------------


def test_unreadable(tmp_path: Path, capsys: Capture) -> None:
    missing = tmp_path / "missing.cdb"
    assert run(capsys, str(missing)) == (
        111,
        "",
        f"pycdb: fatal: unable to read {missing}: file does not exist\n",
    )
    assert run(capsys, "--json", str(tmp_path)) == (
        111,
        "",
        f"pycdb: fatal: unable to read {tmp_path}: is a directory\n",
    )
    # A device is not read to its end (/dev/zero has none).
    assert run(capsys, "/dev/zero") == (
        111,
        "",
        "pycdb: fatal: unable to read /dev/zero: not a regular file or a pipe "
        "(a character device)\n",
    )
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.cdb"
        locked.write_bytes(b"")
        locked.chmod(0)
        code, out, err = run(capsys, str(locked))
        assert (code, out) == (111, "") and "permission denied" in err


def test_usage(capsys: Capture) -> None:
    for args in ([], ["a", "b"], ["--bogus", "a"], ["--limit", "0", "a"], ["--limit"]):
        code, out, err = run(capsys, *args)
        assert (code, out) == (100, "")
        assert err.startswith("pycdb: fatal: usage: pycdb validate FILE")
    code, out, _ = run(capsys, "--help")
    assert code == 0 and out.startswith("usage: pycdb validate FILE")


def test_empty_file(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    expect(capsys, path, "short", 0)


def test_standard_input_and_dash_names() -> None:
    """The installed command, end to end: a pipe as FILE is read to its
    end (it cannot be mapped)."""
    data = (FIXTURES / "rules" / "tcp.smtp.cdb").read_bytes()
    command = script("pycdb")
    done = subprocess.run(
        [command, "validate", "/dev/stdin"],
        input=data,
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"/dev/stdin: sound; every record is one tcprules can write\n")
    done = subprocess.run(
        [command, "validate", "--json", "/dev/stdin"],
        input=data[:-1],
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 100 and json.loads(done.stdout)["sound"] is False


def test_fifo_is_never_waited_on(tmp_path: Path, backend: str) -> None:
    """A FIFO opens without blocking and is read as a pipe: one no one
    writes to is an empty file, found at once; /dev/zero is refused."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    p = outside(["validate", str(fifo)], backend)
    assert (p.returncode, p.stderr) == (100, b"")
    assert p.stdout.decode().splitlines()[1:] == [
        f"{fifo}: offset 0: the file is 0 bytes, shorter than the 2048-byte header",
        f"{fifo}: NOT sound: 1 problem",
    ]
    p = outside(["validate", "--json", "/dev/zero"], backend)
    assert (p.returncode, p.stdout) == (111, b"")
    assert p.stderr == (
        b"pycdb: fatal: unable to read /dev/zero: not a regular file or a pipe "
        b"(a character device)\n"
    )


def test_file_name_that_is_not_utf8(tmp_path: Path, capsysbinary: Any) -> None:
    """The report names the file by its bytes, whatever the locale."""
    raw = bytes(tmp_path) + b"/n\xff.cdb"
    write_cdb(os.fsdecode(raw), [(b"1.2.3.4", b"D\0")])
    assert cli.main(["validate", os.fsdecode(raw)]) == 0
    out, err = capsysbinary.readouterr()
    assert err == b"" and out.endswith(raw + b": sound; every record is one tcprules can write\n")


def test_both_backends_agree(tmp_path: Path) -> None:
    """The same findings, word for word, whichever backend hashes."""
    from pycdb import _backend
    from pycdb.rules import soundness

    buf = build(tmp_path, RECORDS)
    (o1, h1, p1), (o2, h2, p2) = slots_of(buf, a_table(buf, 1))
    struct.pack_into("<IIII", buf, o1, h2, p2, h1 ^ 0x300, p1)
    path = crafted(tmp_path, buf + b"x")
    reports = []
    for name in _backend.available():
        with _backend.use(name):
            reports.append(soundness.validate_rules(path).as_dict())
    assert all(r == reports[0] for r in reports) and not reports[0]["sound"]
