"""``pycdb make``: the command around the compiler.  Usage, messages, the
golden fixtures, file handling on every error path, and the safety
checks tcprules lacks.  Most cases run in-process (fd 0 redirected); a few
run the installed ``pycdb`` script end to end."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import FIXTURES, child_env, python, ref, run_measured, run_ref, script

import pycdb

RULES = FIXTURES / "rules"
PYCDB = python("-c", "import sys; from pycdb.cli import main; sys.exit(main())")
#: The same, writing no bytecode: under RLIMIT_FSIZE a .pyc written then
#: would be cut short (importlib ignores a short write) and break every
#: later import.
PYCDB_NO_PYC = python("-B", "-c", "import sys; from pycdb.cli import main; sys.exit(main())")


def make_in(workdir: Path, *args: str, stdin: Path | None = None) -> tuple[int, str, str]:
    """``pycdb make ARGS`` in this process with cwd = workdir and stdin
    from a file (default: an empty one)."""
    import contextlib
    import io

    from pycdb import cli

    fd = os.open(os.devnull if stdin is None else stdin, os.O_RDONLY)
    saved = os.dup(0)
    cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.dup2(fd, 0)
        os.chdir(workdir)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["make", *args])
    finally:
        os.chdir(cwd)
        os.dup2(saved, 0)
        os.close(saved)
        os.close(fd)
    return code, out.getvalue(), err.getvalue()


# ---- usage ---------------------------------------------------------------------


def test_usage(tmp_path: Path) -> None:
    for args in ([], ["only.cdb"]):
        code, out, err = make_in(tmp_path, *args)
        assert (code, out) == (100, "")
        assert err == "pycdb: fatal: usage: pycdb make RULES.cdb RULES.tmp < RULES\n"
        assert run_ref("tcprules", *args).returncode == 100
    assert os.listdir(tmp_path) == []


def test_help(tmp_path: Path) -> None:
    code, out, err = make_in(tmp_path, "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: pycdb make RULES.cdb RULES.tmp < RULES\n")
    assert "tcprules" in out


def test_extra_operands_are_refused(tmp_path: Path) -> None:
    """tcprules ignores a third operand, so ``tcprules OUT TMP rules.smtp
    </dev/null`` publishes an empty, allow-all database: refused, exit
    100, nothing written."""
    (tmp_path / "rules.smtp").write_bytes(b":deny\n")
    theirs = run_ref("tcprules", "b.cdb", "b.tmp", "rules.smtp", input=b"", cwd=tmp_path)
    assert theirs.returncode == 0 and (tmp_path / "b.cdb").stat().st_size == 2048
    code, out, err = make_in(tmp_path, "a.cdb", "a.tmp", "rules.smtp", stdin=None)
    assert code == 100 and out == ""
    assert err == (
        "pycdb: fatal: extra operand 'rules.smtp': the rules are read from standard input, "
        "not named (did you mean '< rules.smtp'?); usage: pycdb make RULES.cdb RULES.tmp < RULES\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["b.cdb", "rules.smtp"]


# ---- golden fixtures -----------------------------------------------------------------


GOLDEN = ["tcp.smtp", "ranges.rules", "instructions.rules"]
REFUSED = {"bad-crlf.rules": 1, "bad-ipv6.rules": 2, "bad-space.rules": 3, "bad-range.rules": 2}


@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name: str, tmp_path: Path) -> None:
    code, out, err = make_in(tmp_path, "out.cdb", "out.tmp", stdin=RULES / name)
    # instructions.rules has a line without ':' (line 9), which tcprules skips
    warned = (
        f"pycdb: warning: {RULES / name}:9: no ':' on this line, so tcprules skips it "
        "without a word (a rule is ADDRESS:allow or ADDRESS:deny)\n"
        if name == "instructions.rules"
        else ""
    )
    assert (code, out, err) == (0, "", warned)
    assert (tmp_path / "out.cdb").read_bytes() == (RULES / f"{name}.cdb").read_bytes()
    assert (tmp_path / "out.cdb").stat().st_mode & 0o777 == 0o644 & ~_umask()


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_fixture_is_what_tcprules_writes(name: str, tmp_path: Path) -> None:
    theirs = run_ref("tcprules", "o.cdb", "o.tmp", input=(RULES / name).read_bytes(), cwd=tmp_path)
    assert theirs.returncode == 0
    assert (tmp_path / "o.cdb").read_bytes() == (RULES / f"{name}.cdb").read_bytes()


@pytest.mark.parametrize(("name", "lineno"), sorted(REFUSED.items()))
def test_refused_fixture(name: str, lineno: int, tmp_path: Path) -> None:
    (tmp_path / "out.cdb").write_bytes(b"the old database")
    code, out, err = make_in(tmp_path, "out.cdb", "out.tmp", stdin=RULES / name)
    assert (code, out) == (100, "")
    real = os.path.realpath(RULES / name)
    assert err.startswith(f"pycdb: fatal: {real}:{lineno}: unable to parse this line: ")
    assert err.count("\n") == 1 and "\r" not in err
    assert os.listdir(tmp_path) == ["out.cdb"]
    assert (tmp_path / "out.cdb").read_bytes() == b"the old database"
    theirs = run_ref("tcprules", "o.cdb", "o.tmp", input=(RULES / name).read_bytes(), cwd=tmp_path)
    assert theirs.returncode == 100


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- files on every path -----------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_mode_follows_umask_like_tcprules(mask: int, tmp_path: Path) -> None:
    rules = RULES / "tcp.smtp"
    old = os.umask(mask)
    try:
        assert make_in(tmp_path, "a.cdb", "a.tmp", stdin=rules)[0] == 0
        theirs = run_ref("tcprules", "b.cdb", "b.tmp", input=rules.read_bytes(), cwd=tmp_path)
    finally:
        os.umask(old)
    assert theirs.returncode == 0
    assert (tmp_path / "a.cdb").stat().st_mode == (tmp_path / "b.cdb").stat().st_mode


def test_replaces_target_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out.cdb"
    target.write_bytes(b"old")
    old_inode = target.stat().st_ino
    with open(target, "rb") as reader:  # a tcpserver that opened the old file
        assert make_in(tmp_path, "out.cdb", "out.tmp", stdin=RULES / "tcp.smtp")[0] == 0
        assert reader.read() == b"old"
    assert target.stat().st_ino != old_inode
    assert target.read_bytes() == (RULES / "tcp.smtp.cdb").read_bytes()
    assert not (tmp_path / "out.tmp").exists()


def test_stale_temporary_is_left_alone_on_error_and_replaced_on_success(tmp_path: Path) -> None:
    """A leftover of a crashed tcprules (it writes the header last, so
    its file starts with zeros) is never opened: an error leaves it as it
    was, success replaces it (and renames the result over RULES.cdb)."""
    leftover = b"\0" * 2048 + b"left over by a crashed tcprules"
    (tmp_path / "out.tmp").write_bytes(leftover)
    bad = tmp_path / "bad"
    bad.write_bytes(b"a:allow\nb:nope\n")
    code, _, err = make_in(tmp_path, "out.cdb", "out.tmp", stdin=bad)
    assert code == 100 and f"{bad}:2: " in err
    assert sorted(os.listdir(tmp_path)) == ["bad", "out.tmp"]
    assert (tmp_path / "out.tmp").read_bytes() == leftover
    good = tmp_path / "good"
    good.write_bytes(b"a:allow\n")
    assert make_in(tmp_path, "out.cdb", "out.tmp", stdin=good)[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["bad", "good", "out.cdb"]


def test_cannot_create_temporary(tmp_path: Path) -> None:
    code, _, err = make_in(tmp_path, "out.cdb", "missing/out.tmp")
    assert code == 111
    assert err == "pycdb: fatal: unable to create missing/out.tmp: file does not exist\n"
    assert run_ref("tcprules", "out.cdb", "missing/out.tmp", cwd=tmp_path).returncode == 111


def test_write_error_is_111_and_cleans_up(tmp_path: Path, backend: str) -> None:
    """A file-size limit makes write() fail mid-way (EFBIG), for tcprules
    and pycdb alike."""
    rules = b"".join(
        b"10.%d.%d.%d:allow\n" % (i >> 16, (i >> 8) & 255, i & 255) for i in range(5000)
    )

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    tcprules = ref("tcprules")
    for cmd in ([tcprules], [*PYCDB_NO_PYC, "make"]):
        proc = subprocess.run(
            [*cmd, "out.cdb", "out.tmp"],
            input=rules,
            cwd=tmp_path,
            capture_output=True,
            preexec_fn=limit,
            env=child_env(),
        )
        assert proc.returncode == 111, proc.stderr
        assert not (tmp_path / "out.cdb").exists()
        if cmd[0] == tcprules:
            (tmp_path / "out.tmp").unlink()  # tcprules leaves it behind
        else:
            assert proc.stderr.startswith(b"pycdb: fatal: unable to write to out.tmp: ")
            assert os.listdir(tmp_path) == []


def test_unreadable_input_is_111(tmp_path: Path, backend: str) -> None:
    tcprules = ref("tcprules")
    for cmd in ([tcprules], [*PYCDB, "make"]):
        proc = subprocess.run(
            [*cmd, "out.cdb", "out.tmp"],
            cwd=tmp_path,
            capture_output=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: os.close(0),
            env=child_env(),
        )
        assert proc.returncode == 111, proc.stderr
        assert b"unable to read input" in proc.stderr
        assert not (tmp_path / "out.cdb").exists()
        if cmd[0] == tcprules:
            (tmp_path / "out.tmp").unlink()  # tcprules leaves it behind
        assert os.listdir(tmp_path) == []


def test_stdin_name_in_messages(tmp_path: Path, backend: str) -> None:
    bad = b"1.2.3.4:allow\n1.2.3.5:alow\n"
    proc = subprocess.run(
        [*PYCDB, "make", "o.cdb", "o.tmp"],
        input=bad,
        cwd=tmp_path,
        capture_output=True,
        env=child_env(),
    )
    assert proc.returncode == 100
    assert proc.stderr.startswith(b"pycdb: fatal: -:2: unable to parse this line: 1.2.3.5:alow: ")
    (tmp_path / "rules").write_bytes(bad)
    code, _, err = make_in(tmp_path, "o.cdb", "o.tmp", stdin=tmp_path / "rules")
    assert err.startswith(f"pycdb: fatal: {os.path.realpath(tmp_path / 'rules')}:2: ")


def test_end_to_end_script(tmp_path: Path, backend: str) -> None:
    with open(RULES / "tcp.smtp", "rb") as stdin:
        proc = subprocess.run(
            [script("pycdb"), "make", "x.cdb", "x.tmp"],
            stdin=stdin,
            cwd=tmp_path,
            capture_output=True,
            env=child_env(),
        )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert (tmp_path / "x.cdb").read_bytes() == (RULES / "tcp.smtp.cdb").read_bytes()


# ---- what tcprules lets through --------------------------------------------------------


def test_refuses_temporary_that_is_the_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "tcp.smtp"
    shutil.copy(RULES / "tcp.smtp", rules)
    text = rules.read_bytes()
    for tmp in ("tcp.smtp", str(rules)):
        code, _, err = make_in(tmp_path, "tcp.smtp.cdb", tmp, stdin=rules)
        assert code == 100
        assert "it is the rules file being read" in err and "swap the arguments" in err
        assert rules.read_bytes() == text
        assert not (tmp_path / "tcp.smtp.cdb").exists()
    # A link to the rules is only a link: replaced, the rules untouched.
    (tmp_path / "link").symlink_to("tcp.smtp")
    assert make_in(tmp_path, "tcp.smtp.cdb", "link", stdin=rules)[0] == 0
    assert rules.read_bytes() == text and not os.path.lexists(tmp_path / "link")
    # What tcprules does instead: an empty, allow-all database.
    work = tmp_path / "theirs"
    work.mkdir()
    shutil.copy(rules, work / "tcp.smtp")
    with open(work / "tcp.smtp", "rb") as stdin:
        subprocess.run([ref("tcprules"), "x.cdb", "tcp.smtp"], stdin=stdin, cwd=work, check=True)
    assert not (work / "tcp.smtp").exists()  # the rules are gone ...
    with pycdb.Reader(work / "x.cdb") as db:  # ... and nothing is denied
        assert len(db) == 0


def test_refuses_a_temporary_that_holds_text(tmp_path: Path) -> None:
    """``cat rules | pycdb make rules.cdb rules``: standard input is a pipe,
    so nothing says the rules are that file, but it holds text: refused
    (tcprules destroys the rules and installs an empty database)."""
    rules = tmp_path / "rules"
    shutil.copy(RULES / "tcp.smtp", rules)
    text = rules.read_bytes()
    done = subprocess.run(
        [*python("-m", "pycdb", "make", "rules.cdb", "rules")],
        input=text,
        capture_output=True,
        cwd=tmp_path,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 100, done.stderr
    assert b"holds text, not a leftover database" in done.stderr
    assert rules.read_bytes() == text and sorted(os.listdir(tmp_path)) == ["rules"]
    theirs = subprocess.run(
        [ref("tcprules"), "rules.cdb", "rules"], input=text, capture_output=True, cwd=tmp_path
    )
    assert theirs.returncode == 0 and sorted(os.listdir(tmp_path)) == ["rules.cdb"]


def test_refuses_target_that_is_the_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "tcp.smtp"
    shutil.copy(RULES / "tcp.smtp", rules)
    code, _, err = make_in(tmp_path, "tcp.smtp", "x.tmp", stdin=rules)
    assert code == 100 and "refusing to replace tcp.smtp" in err
    assert rules.read_bytes() == (RULES / "tcp.smtp").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["tcp.smtp"]


def test_refuses_temporary_that_is_the_target(tmp_path: Path) -> None:
    target = tmp_path / "x.cdb"
    for setup in ("absent", "present", "hard link"):
        if setup == "present":
            target.write_bytes(b"live")
        if setup == "hard link":
            os.link(target, tmp_path / "x.tmp")
        tmp = "x.tmp" if setup == "hard link" else "x.cdb"
        code, _, err = make_in(tmp_path, "x.cdb", tmp, stdin=RULES / "tcp.smtp")
        assert code == 100 and "as its own temporary file" in err, err
        if setup != "absent":
            assert target.read_bytes() == b"live"


@pytest.mark.parametrize("points_at", ["x.cdb", "rules", "elsewhere/victim"])
def test_a_link_at_the_temporary_is_replaced_never_followed(tmp_path: Path, points_at: str) -> None:
    """tcprules follows a symbolic link planted at TMP and overwrites its
    target (which then becomes the database); pycdb replaces the link."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "victim").write_bytes(b"precious")
    (tmp_path / "rules").write_bytes((RULES / "tcp.smtp").read_bytes())
    (tmp_path / "x.cdb").write_bytes(b"old")
    (tmp_path / "x.tmp").symlink_to(points_at)
    before = {p: p.read_bytes() for p in (tmp_path / "elsewhere" / "victim", tmp_path / "rules")}
    code, out, err = make_in(tmp_path, "x.cdb", "x.tmp", stdin=RULES / "tcp.smtp")
    assert (code, out, err) == (0, "", "")
    assert (tmp_path / "x.cdb").read_bytes() == (RULES / "tcp.smtp.cdb").read_bytes()
    assert not (tmp_path / "x.tmp").exists() and not (tmp_path / "x.tmp").is_symlink()
    assert {p: p.read_bytes() for p in before} == before


def test_refuses_temporary_on_another_file_system(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to try")
    tmp = other / f"pycdb-test-{os.getpid()}.tmp"
    code, _, err = make_in(tmp_path, "x.cdb", str(tmp), stdin=RULES / "tcp.smtp")
    assert code == 111 and "different file systems" in err
    assert not tmp.exists() and not (tmp_path / "x.cdb").exists()


def test_refuses_target_in_missing_directory_or_a_directory(tmp_path: Path) -> None:
    code, _, err = make_in(tmp_path, "nowhere/x.cdb", "x.tmp", stdin=RULES / "tcp.smtp")
    assert code == 111 and "nowhere" in err
    (tmp_path / "d").mkdir()
    code, _, err = make_in(tmp_path, "d", "x.tmp", stdin=RULES / "tcp.smtp")
    assert code == 111 and "is a directory" in err
    assert os.listdir(tmp_path) == ["d"]
    for target in ("nowhere/x.cdb", "d"):  # tcprules fails too, after the work
        assert (
            run_ref("tcprules", target, "y.tmp", input=b"a:allow\n", cwd=tmp_path).returncode == 111
        )


def test_pipe_input(tmp_path: Path, backend: str) -> None:
    proc = subprocess.run(
        [*PYCDB, "make", "x.cdb", "x.tmp"],
        input=(RULES / "tcp.smtp").read_bytes(),
        cwd=tmp_path,
        capture_output=True,
        env=child_env(),
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert (tmp_path / "x.cdb").read_bytes() == (RULES / "tcp.smtp.cdb").read_bytes()


# ---- memory ---------------------------------------------------------------------------


def peak_rss_kib(backend: str, rules: Path, workdir: Path) -> int:
    """Peak RSS of ``pycdb make`` on ``rules``, measured by a small
    intermediate process (a child forked from pytest itself would count
    pytest's pages)."""
    with open(rules, "rb") as stdin:
        done, kib = run_measured(
            [*PYCDB, "make", "o.cdb", "o.tmp"],
            stdin=stdin,
            cwd=workdir,
            env=child_env(backend=backend),
        )
    assert done.returncode == 0, done.stderr
    return kib


def test_memory_is_flat_in_the_number_of_lines(tmp_path: Path, backend: str) -> None:
    """Text is streamed: a long file of comments (one of them 10 MB) costs
    nothing, and each record costs the writer's two words (plus the C
    maker's second copy while it sorts), not its line."""
    comments = tmp_path / "comments"
    with open(comments, "wb") as f:
        for _ in range(200):
            f.write((b"# " + b"x" * 100 + b"\n") * 1000)
        f.write(b"#")
        for _ in range(100):
            f.write(b"y" * 100_000)
        f.write(b"\n")
    sizes = {}
    for n in (50_000, 150_000):
        path = tmp_path / f"n{n}"
        with open(path, "wb") as f:  # written a line at a time: pytest stays small
            for i in range(n):
                f.write(b'10.%d.%d.%d:allow,A="b"\n' % (i >> 16, (i >> 8) & 255, i & 255))
        sizes[n] = peak_rss_kib(backend, path, tmp_path)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    base = peak_rss_kib(backend, empty, tmp_path)
    assert peak_rss_kib(backend, comments, tmp_path) - base < 4096  # 30 MB read, < 4 MiB held
    per_record = (sizes[150_000] - sizes[50_000]) * 1024 / 100_000
    assert per_record <= 48, per_record


# ---- words for the mistakes people make ------------------------------------------


def test_lines_without_a_colon_are_skipped_with_a_warning(tmp_path: Path) -> None:
    """tcprules skips '192.0.2.9 allow' without a word; pycdb says so, with
    the line number, and still builds the same database (exit 0)."""
    text = b"# header\n192.0.2.9 allow\n127.:allow\n  \t\n10.0.0.1 deny\n:deny\n"
    (tmp_path / "rules").write_bytes(text)
    code, out, err = make_in(tmp_path, "a.cdb", "a.tmp", stdin=tmp_path / "rules")
    assert (code, out) == (0, "")
    name = tmp_path / "rules"
    assert err == "".join(
        f"pycdb: warning: {name}:{n}: no ':' on this line, so tcprules skips it without a "
        "word (a rule is ADDRESS:allow or ADDRESS:deny)\n"
        for n in (2, 5)
    )
    theirs = run_ref("tcprules", "b.cdb", "b.tmp", input=text, cwd=tmp_path)
    assert (theirs.returncode, theirs.stderr) == (0, b"")
    assert (tmp_path / "a.cdb").read_bytes() == (tmp_path / "b.cdb").read_bytes()


def test_many_lines_without_a_colon(tmp_path: Path) -> None:
    text = b"".join(b"10.0.0.%d allow\n" % i for i in range(20)) + b":deny\n"
    (tmp_path / "rules").write_bytes(text * 100)  # and past the bulk compiler's block
    code, _, err = make_in(tmp_path, "a.cdb", "a.tmp", stdin=tmp_path / "rules")
    lines = err.splitlines()
    assert code == 0 and len(lines) == 9
    assert lines[7].startswith(f"pycdb: warning: {tmp_path / 'rules'}:8: no ':'")
    assert lines[8] == f"pycdb: warning: {tmp_path / 'rules'}: 1992 more lines without ':' skipped"


def test_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    (tmp_path / "rules").write_bytes(b"\xef\xbb\xbf# rules for mail\n127.:allow\n")
    code, _, err = make_in(tmp_path, "a.cdb", "a.tmp", stdin=tmp_path / "rules")
    assert code == 0
    assert "1: the text starts with a UTF-8 byte order mark (bytes EF BB BF)" in err
    (tmp_path / "rules").write_bytes(b"\xef\xbb\xbf127.:allowed\n")
    code, _, err = make_in(tmp_path, "a.cdb", "a.tmp", stdin=tmp_path / "rules")
    assert code == 100 and "the line starts with a UTF-8 byte order mark" in err


def test_typographic_quotes_are_named_and_columns_counted_in_characters(
    tmp_path: Path,
) -> None:
    line = "127.:allow,RELAYCLIENT=\u201c\u201d"
    (tmp_path / "rules").write_bytes(line.encode() + b"\n")
    code, _, err = make_in(tmp_path, "a.cdb", "a.tmp", stdin=tmp_path / "rules")
    assert code == 100
    assert f"at column {line.index(chr(0x201D)) + 1}, found '\u201d'" in err
    assert "typographic quotes (\u201c \u201d)" in err and "write plain ASCII quotes" in err
