"""``pycdb check`` against the real tcprulescheck: the same bytes on
standard output and the same exit code, for the connection in the
environment; the options and --json on top."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import child_env, run_ref, script
from hypothesis import given
from rules_helpers import (
    Conn,
    compile_rules,
    connection_env,
    handmade,
    scenarios,
    tcprulescheck,
    write_cdb,
)

from pycdb.cli import main
from pycdb.rules import RuleSet

VARIABLES = {"TCPREMOTEIP": 0, "TCPREMOTEHOST": 1, "TCPREMOTEINFO": 2}


def run(
    args: list[str], capfd: pytest.CaptureFixture[bytes], conn: Conn | None = None
) -> tuple[int, bytes, bytes]:
    """``pycdb ARGS`` in this process with the connection in the
    environment (None: unset): (exit code, stdout, stderr)."""
    saved = {name: os.environb.get(name.encode()) for name in VARIABLES}
    try:
        for name, i in VARIABLES.items():
            value = None if conn is None else conn[i]
            if value is None:
                os.environb.pop(name.encode(), None)
            else:
                os.environb[name.encode()] = value
        code = main(args)
    finally:
        for name, old in saved.items():
            if old is None:
                os.environb.pop(name.encode(), None)
            else:
                os.environb[name.encode()] = old
    out, err = capfd.readouterr()
    return code, out, err


def same_as_tcprulescheck(
    path: Path, conn: Conn, capfd: pytest.CaptureFixture[bytes], *options: str
) -> None:
    """The same output as tcprulescheck; but an IPv6 TCPREMOTEIP, which
    0.88's tcpserver never gives, is an error naming the dialects that
    take one (tcprulescheck 0.88 would look the text up)."""
    want = tcprulescheck(path, *conn)
    code, out, err = run(["check", *options, str(path)], capfd, conn)
    if conn[0] is not None and b":" in conn[0]:
        assert (code, out) == (100, b""), conn
        assert b"--dialect ucspi-tcp-ipv6" in err
        return
    assert (code, out) == (want.returncode, want.stdout), conn
    assert err == b""


@given(scenarios())
def test_compiled_rules(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], scenario: tuple
) -> None:
    text, conns = scenario
    path = tmp_path / "rules.cdb"
    compile_rules(text, path)
    for conn in conns:
        same_as_tcprulescheck(path, conn, capfdbinary)


@given(handmade())
def test_handmade_files(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], case: tuple
) -> None:
    records, conns = case
    path = tmp_path / "rules.cdb"
    write_cdb(path, records)
    for conn in conns:
        # A hand-made key such as '::1' would make the file look like
        # ucspi-tcp-ipv6's: this is 0.88's tcprulescheck, said so.
        same_as_tcprulescheck(path, conn, capfdbinary, "--dialect", "ucspi-tcp")


def test_defaults_and_empty_values(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "rules.cdb"
    compile_rules(
        b'0.0.0.0:allow,WHO="default ip"\n'
        b'joe@0.0.0.0:allow,WHO="joe"\n'
        b'@0.0.0.0:allow,WHO="empty info"\n'
        b'=:deny,WHO="empty host"\n'
        b':allow,WHO="empty key"\n',
        path,
    )
    for conn in [
        (None, None, None),  # TCPREMOTEIP unset: 0.0.0.0
        (None, None, b"joe"),
        (None, None, b""),  # set but empty: given
        (b"1.2.3.4", b"", None),
        (b"", None, None),  # the empty ip is the empty key
        (b"1.2.3.4", None, None),
    ]:
        same_as_tcprulescheck(path, conn, capfdbinary)


def test_options_override_the_environment(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "rules.cdb"
    compile_rules(
        b'joe@=mx.example.com:allow,A="1"\n=:deny\n1.2.3.:allow,B="2"\n:allow,C="3"\n', path
    )
    env_conn = (b"9.9.9.9", b"other.example", b"root")
    for options, conn in [
        (["--ip", "1.2.3.4"], (b"1.2.3.4", b"other.example", b"root")),
        (["--ip=5.6.7.8", "--host="], (b"5.6.7.8", b"", b"root")),
        (["--host", "mx.example.com", "--info", "joe"], (b"9.9.9.9", b"mx.example.com", b"joe")),
        (["--info="], (b"9.9.9.9", b"other.example", b"")),
    ]:
        want = tcprulescheck(path, *conn)
        for args in (["check", str(path), *options], ["check", *options, str(path)]):
            code, out, _ = run(args, capfdbinary, env_conn)
            assert (code, out) == (0, want.stdout), options


def test_json(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    path = tmp_path / "rules.cdb"
    data = b"+A=1\0+NOEQ\0D\0+A=\xff\0+B=x=y\0tail"
    write_cdb(path, [(b"=h\xe9.example", data), (b"", b"")])
    code, out, err = run(
        ["check", "--json", str(path), "--ip", "1.2.3.4", "--host", os.fsdecode(b"h\xe9.example")],
        capfdbinary,
    )
    assert (code, err) == (0, b"")
    assert out.endswith(b"\n") and out.isascii()
    obj = json.loads(out)
    assert list(obj) == ["rule", "allowed", "env", "data"]
    assert obj["rule"].encode("utf-8", "surrogateescape") == b"=h\xe9.example"
    assert obj["allowed"] is False
    assert obj["env"] == {"A": "\udcff", "B": "x=y"}
    assert obj["data"].encode("latin-1") == data
    decision = RuleSet(path).check(b"1.2.3.4", b"h\xe9.example")
    assert obj == {
        "rule": decision.rule,
        "allowed": decision.allowed,
        "env": decision.env,
        "data": decision.data.decode("latin-1"),
    }
    code, out, _ = run(["check", "--json", str(path)], capfdbinary, (b"5.6.7.8", None, None))
    assert json.loads(out) == {"rule": "", "allowed": True, "env": {}, "data": ""}
    path.unlink()
    write_cdb(path, [])
    code, out, _ = run(["check", "--json", str(path)], capfdbinary)
    assert json.loads(out) == {"rule": None, "allowed": True, "env": {}, "data": ""}


def test_unreadable_files(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    missing = tmp_path / "missing.cdb"
    empty = tmp_path / "empty.cdb"
    empty.write_bytes(b"")
    short = tmp_path / "short.cdb"
    short.write_bytes(b"\0" * 1000)
    for path, reason in [
        (missing, b"file does not exist"),
        (empty, b"not a cdb file: 0 bytes"),
        (short, b"not a cdb file: 1000 bytes"),
    ]:
        want = tcprulescheck(path, b"1.2.3.4", None, None)
        code, out, err = run(["check", str(path)], capfdbinary, (b"1.2.3.4", None, None))
        assert (code, out) == (want.returncode, want.stdout) == (111, b"")
        assert err.startswith(b"pycdb: fatal: unable to read " + str(path).encode() + b": ")
        assert reason in err and err.endswith(b"\n") and err.count(b"\n") == 1


def test_corrupt_file(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"1.2.3.4", b"D\0")])
    buf = bytearray(path.read_bytes())
    buf[2048] = 0xFF  # the record's key length now runs past the records
    path.write_bytes(buf)
    code, out, err = run(["check", str(path)], capfdbinary, (b"1.2.3.4", None, None))
    assert (code, out) == (111, b"")
    assert err.startswith(b"pycdb: fatal: unable to read " + str(path).encode() + b": corrupt cdb")


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["check", "a.cdb", "--ip"],
        ["check", "a.cdb", "--bogus"],
        ["check", "a.cdb", "-x"],
        ["check", "a.cdb", "--json=yes"],
    ],
)
def test_usage(args: list[str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, err = run(args, capfdbinary)
    assert (code, out) == (100, b"")
    assert err.startswith(b"pycdb: fatal: usage: pycdb check RULES.cdb")


def test_a_stray_operand_says_which(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """tcprulescheck ignores a second operand, so ``tcprulescheck rules.cdb
    1.2.3.4`` checks 0.0.0.0 without a word: refused, naming it."""
    code, out, err = run(["check", "a.cdb", "b.cdb"], capfdbinary)
    assert (code, out) == (100, b"")
    assert err.startswith(b"pycdb: fatal: unexpected operand 'b.cdb'; usage: pycdb check RULES")
    code, out, err = run(["check", "a.cdb", "1.2.3.4"], capfdbinary)
    assert (code, out) == (100, b"")
    assert err.startswith(
        b"pycdb: fatal: unexpected operand '1.2.3.4' (a connection from 1.2.3.4 is --ip 1.2.3.4)"
    )


def test_rules_text_given_as_the_database(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    text = tmp_path / "tcp.smtp"
    text.write_bytes(b'127.:allow,RELAYCLIENT=""\n:deny\n')
    code, out, err = run(["check", str(text)], capfdbinary)
    assert (code, out) == (111, b"")
    assert (
        err
        == (
            f"pycdb: fatal: unable to read {text}: it holds rules text, not a database; compile "
            f"it first: pycdb make {text}.cdb {text}.tmp < {text}\n"
        ).encode()
    )


def test_usage_matches_tcprulescheck_without_a_file() -> None:
    assert run_ref("tcprulescheck").returncode == 100


def test_help_and_dashes(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["check", "--help"], capfdbinary)
    assert code == 0 and out.startswith(b"usage: pycdb check RULES.cdb")
    path = tmp_path / "-rules.cdb"
    write_cdb(path, [(b"", b"D\0")])
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["check", "--", "-rules.cdb"], capfdbinary, (b"1.2.3.4", None, None))
    assert (code, out) == (0, b"rule :\ndeny connection\n")


def test_the_installed_command(tmp_path: Path, backend: str) -> None:
    """The console script, in a process of its own, with non-UTF-8 bytes
    in the environment."""
    path = tmp_path / "rules.cdb"
    write_cdb(path, [(b"joe\xff@=h\xe9", b"+X=\xfe\0D\0"), (b"=", b"+Y=1\0")])
    command = [script("pycdb"), "check", str(path)]
    for conn in [(b"1.2.3.4", b"h\xe9", b"joe\xff"), (None, b"h", None), (None, None, None)]:
        got = subprocess.run(command, env=child_env(connection_env(*conn)), capture_output=True)
        want = tcprulescheck(path, *conn)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout)
        assert got.stderr == b""
    missing = str(tmp_path / "missing.cdb")
    got = subprocess.run([command[0], "check", missing], env=child_env(), capture_output=True)
    assert got.returncode == 111 and got.stdout == b""
    assert got.stderr == f"pycdb: fatal: unable to read {missing}: file does not exist\n".encode()
