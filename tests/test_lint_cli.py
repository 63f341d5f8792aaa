"""``pycdb lint``: the golden transcripts in tests/fixtures/lint (one per
finding, as a user sees it), then options, exit codes and errors.

A transcript (``NAME.expected``) holds commands run in a copy of the
fixtures directory, each as ``$ pycdb lint ARGS``, its exact standard
output, and ``[exit N]``.  Before they run, every ``NAME.rules`` that
tcprules accepts is compiled to ``NAME.cdb`` and every ``NAME.records``
(``KEY<TAB>DATA`` with Python byte escapes) is written to ``NAME.cdb``,
so the cdb transcripts come from the same reviewed text.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import FIXTURES, child_env, script

import pycdb
from pycdb.cli import main
from pycdb.errors import RulesSyntaxError
from pycdb.rules import compile
from pycdb.rules.lint import CODES

LINT = FIXTURES / "lint"
Capture = pytest.CaptureFixture[bytes]
TRANSCRIPTS = sorted(LINT.glob("*.expected"))
#: Codes whose goldens live in tests/test_lint.py (they need file times
#: or damaged hash tables, which a transcript cannot set up).
INLINE = {"stale", "newer-text", "unreachable"}


def prepare(tmp_path: Path) -> Path:
    work = tmp_path / "lint"
    shutil.copytree(LINT, work)
    for rules in work.glob("*.rules"):
        with contextlib.suppress(RulesSyntaxError):  # the refused ones have no cdb
            compile(rules, rules.with_suffix(".cdb"))
    for records in work.glob("*.records"):
        with pycdb.Writer(records.with_suffix(".cdb")) as w:
            for line in records.read_bytes().split(b"\n"):
                if line and not line.startswith(b"#"):
                    key, _, data = line.partition(b"\t")
                    w.add(codecs.escape_decode(key)[0], codecs.escape_decode(data)[0])
    return work


def transcript(path: Path) -> list[tuple[list[str], str, int]]:
    """(arguments, output, exit code) of each command in a transcript."""
    runs = []
    for block in path.read_text().split("$ pycdb lint ")[1:]:
        command, *output, exit_line = block.rstrip("\n").split("\n")
        match = re.fullmatch(r"\[exit (\d+)\]", exit_line)
        assert match and output, f"{path.name}: no output or [exit N] after {command!r}"
        runs.append((shlex.split(command), "\n".join(output) + "\n", int(match.group(1))))
    return runs


def run(args: list[str], capsysbinary: Capture) -> tuple[str, str, int]:
    code = main(["lint", *args])
    out, err = capsysbinary.readouterr()
    return out.decode("utf-8", "surrogateescape"), err.decode(), code


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_golden(
    path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: Capture,
) -> None:
    monkeypatch.chdir(prepare(tmp_path))
    for args, expected, code in transcript(path):
        out, err, got = run(args, capsysbinary)
        assert (out, err, got) == (expected, "", code), args


def test_every_finding_has_a_golden() -> None:
    shown = set()
    for path in TRANSCRIPTS:
        shown |= set(re.findall(r" \[([a-z0-9-]+)\]$", path.read_text(), re.M))
    assert shown | INLINE == set(CODES)
    assert not shown & INLINE


def test_the_readme_lists_every_code() -> None:
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", (LINT / "README.md").read_text(), re.M)
    assert listed == list(CODES)


def test_every_rules_fixture_has_a_transcript() -> None:
    stems = {p.stem for p in LINT.glob("*.rules")} | {p.stem for p in LINT.glob("*.records")}
    assert stems <= {p.stem for p in TRANSCRIPTS}


def test_the_installed_command(tmp_path: Path) -> None:
    """The console script, in a process of its own: the same transcript,
    and standard input as ``-`` (detected as text or as a cdb)."""
    work = prepare(tmp_path)
    ((args, expected, code), *_) = transcript(LINT / "open-relay.expected")
    command = script("pycdb")
    done = subprocess.run(
        [command, "lint", *args], cwd=work, capture_output=True, env=child_env(), timeout=60
    )
    assert (done.stdout.decode(), done.stderr, done.returncode) == (expected, b"", code)
    for name in ("open-relay.rules", "open-relay.cdb"):
        done = subprocess.run(
            [command, "lint", "-"],
            input=(work / name).read_bytes(),
            capture_output=True,
            env=child_env(),
            timeout=60,
        )
        assert done.returncode == 1 and done.stdout.count(b"[open-relay]") == 3
        assert done.stdout.endswith(b"-: 3 errors, 0 warnings\n")
        first = done.stdout.split(b"\n")[0]
        assert first.startswith(b"-:4: error:" if name.endswith(".rules") else b"-: key '=':")


def test_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture) -> None:
    monkeypatch.chdir(prepare(tmp_path))
    out, err, code = run(["--json", "relay-by-name.rules", "clean.cdb"], capsysbinary)
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 1 and err == ""
    assert first["file"] == "relay-by-name.rules" and first["kind"] == "text"
    assert (first["errors"], first["warnings"], first["infos"]) == (3, 0, 0)
    assert first["findings"][0] == {
        "severity": "error",
        "code": "relay-by-name",
        "line": 2,
        "key": "=mx1.example.com",
        "message": first["findings"][0]["message"],
    }
    assert first["findings"][0]["message"].startswith("'=mx1.example.com' grants RELAYCLIENT")
    assert second["file"] == "clean.cdb" and second["kind"] == "cdb"
    assert second["findings"] == [] and second["records"] == second["rules"] == 258


def test_exit_codes_combine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture
) -> None:
    monkeypatch.chdir(prepare(tmp_path))
    assert run(["clean.rules", "no-default.rules"], capsysbinary)[2] == 0
    assert run(["--strict", "clean.rules", "no-default.rules"], capsysbinary)[2] == 1
    assert run(["no-default.rules", "open-relay.rules"], capsysbinary)[2] == 1


def test_forcing_the_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture
) -> None:
    monkeypatch.chdir(prepare(tmp_path))
    out, _, code = run(["--as-cdb", "clean.rules"], capsysbinary)
    assert code == 1 and "[corrupt]" in out
    out, _, code = run(["--as-text", "clean.cdb"], capsysbinary)
    assert out.startswith("clean.cdb:") and "[corrupt]" not in out


def test_stale_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture
) -> None:
    work = prepare(tmp_path)
    monkeypatch.chdir(work)
    out, _, code = run(["--cdb", "clean.cdb", "clean.rules"], capsysbinary)
    assert (out, code) == ("clean.rules: 0 errors, 0 warnings\n", 0)
    out, _, code = run(["--cdb", "open-relay.cdb", "clean.rules"], capsysbinary)
    assert code == 1 and out.splitlines()[0].startswith(
        "clean.rules: error: open-relay.cdb is not what tcprules makes of this text"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "usage: pycdb lint"),
        (["--bogus", "x"], "(unknown option --bogus)"),
        (["-x", "x"], "(unknown option -x)"),
        (["--cdb"], "(--cdb needs a file)"),
        (["--cdb", "a.cdb", "a", "b"], "(--cdb goes with one rules text FILE)"),
        (["--as-text", "--as-cdb", "a"], "(--as-text and --as-cdb exclude each other)"),
        (["--cdb", "clean.cdb", "clean.cdb"], "clean.cdb is a cdb)"),
        (["--json=1", "a"], "(unknown option --json=1)"),
    ],
)
def test_usage(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: Capture,
) -> None:
    monkeypatch.chdir(prepare(tmp_path))
    out, err, code = run(args, capsysbinary)
    assert code == 100 and out == ""
    assert err.startswith("pycdb: fatal: usage: pycdb lint") and message in err


def test_help(capsysbinary: Capture) -> None:
    out, err, code = run(["--help"], capsysbinary)
    assert code == 0 and out.startswith("usage: pycdb lint") and "--paranoid" in out


def test_unreadable(tmp_path: Path, capsysbinary: Capture) -> None:
    missing = tmp_path / "missing"
    out, err, code = run([str(missing)], capsysbinary)
    assert (out, err, code) == (
        "",
        f"pycdb: fatal: unable to read {missing}: file does not exist\n",
        111,
    )
    rules = tmp_path / "r"
    rules.write_bytes(b":allow\n")
    out, err, code = run(["--cdb", str(missing), str(rules)], capsysbinary)
    assert (out, err, code) == (
        "",
        f"pycdb: fatal: unable to read {missing}: file does not exist\n",
        111,
    )
    out, err, code = run([str(tmp_path)], capsysbinary)
    assert code == 111 and err.startswith(f"pycdb: fatal: unable to read {tmp_path}: ")
