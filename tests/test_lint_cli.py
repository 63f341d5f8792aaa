"""``pycdb lint``: the golden transcripts in tests/fixtures/lint (one per
finding, as a user sees it), then options, exit codes and errors.

A transcript (``NAME.expected``) holds commands run in a copy of the
fixtures directory, each as ``$ pycdb lint ARGS``, its exact standard
output, and ``[exit N]``.  Before they run, every ``NAME.rules`` that
tcprules accepts is compiled to ``NAME.cdb`` by the real ``tcprules``
(``NAME.ipv6.rules`` by Debian's ucspi-tcp-ipv6 tcprules, unpacked as
README.md's test command unpacks it), and every ``NAME.records``
(``KEY<TAB>DATA`` with Python byte escapes: hand-made data) is written
to ``NAME.cdb`` by the real ``cdbmake``, so the cdb transcripts come from
the same reviewed text.  The one exception: ucspi-tcp6's tcprules is not
packaged, so ``NAME.tcp6.rules`` is compiled by ``pycdb make --dialect
ucspi-tcp6``, which reproduces every recorded run of the real one
(tests/test_dialect_vectors.py).
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import IO

import pytest
from helpers import FIXTURES, child_env, ipv6_ref, ref, run_ref, script

from pycdb.cli import main
from pycdb.rules.lint import CODES

LINT = FIXTURES / "lint"
Capture = pytest.CaptureFixture[bytes]
TRANSCRIPTS = sorted(LINT.glob("*.expected"))
#: Codes whose goldens live in tests/test_lint.py (they need file times, modes
#: or damaged hash tables, which a transcript cannot set up).
INLINE = {"stale", "newer-text", "unreachable", "unreadable-mode"}


def cdbmake_input(records: bytes) -> bytes:
    """A ``.records`` file (``KEY<TAB>DATA`` lines with Python byte
    escapes, ``#`` comments) as cdbmake's input: ``+KLEN,DLEN:KEY->DATA``
    lines, then an empty line."""
    out = []
    for line in records.split(b"\n"):
        if line and not line.startswith(b"#"):
            key, _, data = line.partition(b"\t")
            k, d = codecs.escape_decode(key)[0], codecs.escape_decode(data)[0]
            out.append(b"+%d,%d:%s->%s\n" % (len(k), len(d), k, d))
    return b"".join(out) + b"\n"


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixtures directory with the databases the transcripts read,
    made once by the reference programs: each ``NAME.rules`` by the real
    tcprules (a file it refuses gets none), each ``NAME.records`` (data
    tcprules never writes, deliberately hand-made) by the real cdbmake."""
    work = tmp_path_factory.mktemp("lint-fixtures") / "lint"
    shutil.copytree(LINT, work)
    for rules in sorted(work.glob("*.rules")):
        db = rules.with_suffix(".cdb")
        if rules.name.startswith("hang."):
            continue  # ucspi-tcp-ipv6's tcprules loops on it for ever (test_dialect_oracle)
        if rules.name.endswith(".tcp6.rules"):
            command = [script("pycdb"), "make", "--dialect", "ucspi-tcp6"]
        elif rules.name.endswith(".ipv6.rules"):
            command = [ipv6_ref("tcprules")]
        else:
            command = [ref("tcprules")]
        done = subprocess.run(
            [*command, str(db), f"{db}.tmp"],
            input=rules.read_bytes(),
            capture_output=True,
            env=child_env(),
            timeout=60,
        )
        # 100: refused (ucspi-tcp6: 101)
        assert done.returncode in (0, 100, 101), (rules.name, done.stderr)
        if os.path.exists(f"{db}.tmp"):  # what a refusal leaves behind
            os.unlink(f"{db}.tmp")
    for records in sorted(work.glob("*.records")):
        db = records.with_suffix(".cdb")
        done = run_ref("cdbmake", str(db), f"{db}.tmp", input=cdbmake_input(records.read_bytes()))
        assert done.returncode == 0, (records.name, done.stderr)
    return work


@pytest.fixture
def work(databases: Path, tmp_path: Path) -> Path:
    """A fresh copy of :func:`databases` for one test."""
    copy = tmp_path / "lint"
    shutil.copytree(databases, copy)
    return copy


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
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: Capture,
) -> None:
    monkeypatch.chdir(work)
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
    # (NAME.ipv6.rules has the stem NAME.ipv6, and its transcript that name)
    assert stems <= {p.stem for p in TRANSCRIPTS}


def test_the_installed_command(work: Path) -> None:
    """The console script, in a process of its own: the same transcript,
    and standard input as ``-`` (detected as text or as a cdb)."""
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


def test_json(work: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture) -> None:
    monkeypatch.chdir(work)
    out, err, code = run(["--json", "relay-by-name.rules", "clean.cdb"], capsysbinary)
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 1 and err == ""
    assert first["file"] == "relay-by-name.rules" and first["kind"] == "text"
    assert (first["errors"], first["warnings"], first["infos"]) == (3, 0, 0)
    assert first["findings"][0] == {
        "severity": "error",
        "code": "relay-by-name",
        "line": 2,
        "offset": None,
        "key": "=mx1.example.com",
        "message": first["findings"][0]["message"],
    }
    assert first["findings"][0]["message"].startswith("'=mx1.example.com' grants RELAYCLIENT")
    assert second["file"] == "clean.cdb" and second["kind"] == "cdb"
    assert second["findings"] == [] and second["records"] == second["rules"] == 258


def test_exit_codes_combine(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture
) -> None:
    monkeypatch.chdir(work)
    assert run(["clean.rules", "no-default.rules"], capsysbinary)[2] == 0
    assert run(["--strict", "clean.rules", "no-default.rules"], capsysbinary)[2] == 1
    assert run(["no-default.rules", "open-relay.rules"], capsysbinary)[2] == 1


def test_forcing_the_kind(
    work: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture
) -> None:
    monkeypatch.chdir(work)
    out, _, code = run(["--as-cdb", "clean.rules"], capsysbinary)
    assert code == 1 and "[corrupt]" in out
    out, _, code = run(["--as-text", "clean.cdb"], capsysbinary)
    assert out.startswith("clean.cdb:") and "[corrupt]" not in out


def test_stale_option(work: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture) -> None:
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
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: Capture,
) -> None:
    monkeypatch.chdir(work)
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


def lint_process(
    args: list[str],
    cwd: Path | None = None,
    stdin: IO[bytes] | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``pycdb lint ARGS`` in a process of its own, on the active backend,
    killed after 30 seconds: a file that hangs or never ends fails the
    test instead of stopping the run."""
    return subprocess.run(
        [script("pycdb"), "lint", *args],
        cwd=cwd,
        stdin=stdin,
        input=input,
        capture_output=True,
        timeout=30,
        env=child_env(),
    )


def test_devices_are_refused(work: Path) -> None:
    """A device is never read (``/dev/zero`` would never end): as FILE,
    as the --cdb database, and as standard input."""
    refused = "not a regular file or a pipe (a character device)"
    done = lint_process(["/dev/zero"])
    assert (done.returncode, done.stdout) == (111, b"")
    assert done.stderr.decode() == f"pycdb: fatal: unable to read /dev/zero: {refused}\n"
    done = lint_process(["--cdb", "/dev/zero", "clean.rules"], cwd=work)
    assert done.returncode == 111
    assert done.stderr.decode() == f"pycdb: fatal: unable to read /dev/zero: {refused}\n"
    with open("/dev/zero", "rb") as zero:
        done = lint_process(["-"], stdin=zero)
    assert done.returncode == 111
    assert done.stderr.decode() == f"pycdb: fatal: unable to read -: {refused}\n"


def test_fifo_without_a_writer_is_empty(tmp_path: Path) -> None:
    fifo = tmp_path / "rules"
    os.mkfifo(fifo)
    done = lint_process([str(fifo)])
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode().endswith(f"[empty]\n{fifo}: 0 errors, 1 warning\n")


@pytest.mark.parametrize("name", ["open-relay.rules", "open-relay.cdb"])
def test_a_pipe_is_read_once(work: Path, name: str) -> None:
    """A pipe named as FILE (as ``<(...)`` gives one) is read once, to
    its end: its kind is told from the same bytes that are linted."""
    done = lint_process(["/dev/stdin"], input=(work / name).read_bytes())
    assert done.returncode == 1 and done.stdout.count(b"[open-relay]") == 3
    assert done.stdout.endswith(b"/dev/stdin: 3 errors, 0 warnings\n")
