"""The three dialects through the library and the commands: RuleSet.check
from any spelling of an address and from socket addresses, the refusal
of an IPv6 client by ucspi-tcp 0.88's check, recognition of a fork's
database by check, validate, lint and decompile, the forks' exit codes,
decompilation that rebuilds a fork's database byte for byte, and convert,
whose output decides every client as its input does.  (The forks'
languages and lookups are held to the real programs in
tests/test_dialect_vectors.py and tests/test_dialect_oracle.py.)"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import itertools
import os
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pycdb import Reader
from pycdb.cli import main
from pycdb.errors import DialectError, RulesSyntaxError
from pycdb.rules import Rule, RuleSet, compile, parse
from pycdb.rules.convert import convert
from pycdb.rules.decompile import decompile
from pycdb.rules.dialects import CLASSIC, FEFE, FEH, NAMES, get, recognise
from pycdb.rules.lint import lint_cdb
from pycdb.rules.soundness import validate_rules

RULES = (
    b'2001:db8::1:allow,WHO="exact"\n'
    b'1.2.3.4:allow,WHO="v4"\n'
    b'192.0.2.:deny,WHO="v4 prefix"\n'
    b':allow,WHO="default"\n'
)

_counter = itertools.count()


def build(tmp_path: Path, text: bytes, dialect: str) -> Path:
    path = tmp_path / f"r{next(_counter)}.cdb"
    compile(text, path, dialect=dialect)
    return path


# ---- RuleSet.check: any spelling, socket addresses ----------------------------------


def test_check_takes_any_spelling_and_socket_addresses(tmp_path: Path) -> None:
    for dialect in (FEFE, FEH):
        path = build(tmp_path, RULES, dialect)
        with RuleSet(path, dialect=dialect) as rules:
            for ip in (
                "2001:db8::1",
                "2001:DB8:0:0:0:0:0:1",
                "2001:0db8::0001",
                b"2001:db8::1",
                ipaddress.IPv6Address("2001:db8::1"),
                ("2001:db8::1", 25),
                ("2001:db8::1", 25, 0, 0),
            ):
                assert rules.check(ip).env == {"WHO": "exact"}, (dialect, ip)
            # A dual-stack socket's IPv4 client is that IPv4 client.
            for ip in ("::ffff:1.2.3.4", ("::ffff:1.2.3.4", 25, 0, 0), ("1.2.3.4", 25)):
                assert rules.check(ip).env == {"WHO": "v4"}, (dialect, ip)
            assert rules.check(("::ffff:192.0.2.7", 25, 0, 0)).allowed is False
            assert rules.check("2001:db8::2").env == {"WHO": "default"}
            assert rules.check("fe80::1%eth0").env == {"WHO": "default"}  # the scope goes


def test_tcpserver_6_writes_ipv4_clients_mapped(tmp_path: Path) -> None:
    path = build(tmp_path, b'::ffff:1.2.3.4:allow,WHO="mapped"\n' + RULES, FEFE)
    with (
        RuleSet(path, dialect=FEFE) as plain,
        RuleSet(path, dialect=FEFE, mapped_as_ipv6=True) as six,
    ):
        assert plain.check("1.2.3.4").env == {"WHO": "v4"}
        assert plain.check("::ffff:1.2.3.4").env == {"WHO": "v4"}
        assert six.check("::ffff:1.2.3.4").env == {"WHO": "mapped"}
        assert six.check(("1.2.3.4", 25)).env == {"WHO": "mapped"}
        assert six.check("1.2.3.4").env == {"WHO": "v4"}  # text: as given
    with pytest.raises(ValueError, match="tcpserver -6"):
        RuleSet(path, dialect=FEH, mapped_as_ipv6=True)


def test_classic_refuses_an_ipv6_client_and_names_the_dialects(tmp_path: Path) -> None:
    path = build(tmp_path, b'1.2.3.4:allow,WHO="v4"\n:deny\n', CLASSIC)
    with RuleSet(path) as rules:
        assert rules.dialect == CLASSIC
        for ip in ("2001:db8::5", ("2001:db8::5", 25, 0, 0), ipaddress.IPv6Address("::1")):
            with pytest.raises(DialectError, match="'ucspi-tcp-ipv6'.*'ucspi-tcp6'"):
                rules.check(ip)
        with pytest.raises(ValueError):  # DialectError is a ValueError
            rules.check("::1")
        assert rules.check("::ffff:1.2.3.4").env == {"WHO": "v4"}
        assert rules.check(("::ffff:1.2.3.4", 25, 0, 0)).env == {"WHO": "v4"}
        # tcprulescheck's reading: the text as given, whatever it is.
        assert rules.check_text("2001:db8::5").key == b""
        assert rules.check("1..2") == rules.check_text("1..2")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'nope'.*ucspi-tcp6"):
        get("nope")
    with pytest.raises(ValueError, match="unknown dialect"):
        parse(b":allow\n", dialect="nope")


def test_bad_addresses(tmp_path: Path) -> None:
    path = build(tmp_path, RULES, FEFE)
    with RuleSet(path, dialect=FEFE) as rules:
        with pytest.raises(TypeError, match="socket address"):
            rules.check(("::1", 1, 2))
        with pytest.raises(TypeError):
            rules.check(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="NUL"):
            rules.check("::1\0")


# ---- the library: parse, Rule.make, compile ----------------------------------------


def test_parse_and_make_per_dialect() -> None:
    (rule,) = parse(b"10.0.0.0/8:deny\n", dialect=FEH)
    assert rule.keys == (b"_0000e0g0",) and rule.dialect == FEH
    made = Rule.make("2001:db8::/32", "allow", dialect=FEH)
    assert made.keys == (b"^00`000000000000a0000bc0de0fgh000",)
    assert Rule.make("2001:db8::1", dialect=FEFE).keys == (b"2001:db8::1",)
    assert Rule.make("10.0.0.0/8").keys == (b"10.0.0.0/8",)  # 0.88: a key of its own
    with pytest.raises(ValueError, match="':allow'"):
        Rule.make("a:allowed", dialect=FEFE)
    with pytest.raises(ValueError, match="','"):
        Rule.make("a,b", dialect=FEH)
    with pytest.raises(ValueError, match="ucspi-tcp6's tcprules refuses"):
        Rule.make("10.0.0.0/40", dialect=FEH)
    with pytest.raises(ValueError, match="':'"):
        Rule.make("::1")


def test_compile_from_rules_writes_what_the_text_writes(tmp_path: Path) -> None:
    text = b"10.0.0.0/8:deny\n2001:db8::/32:allow\n::1:allow\n"
    rules = list(parse(text, dialect=FEH))
    a, b = tmp_path / "a.cdb", tmp_path / "b.cdb"
    compile(text, a, dialect=FEH)
    compile(rules, b, dialect=FEH)
    assert a.read_bytes() == b.read_bytes()


def test_the_ipv6_patch_loop_is_refused_with_its_line() -> None:
    with pytest.raises(RulesSyntaxError) as info:
        list(parse(b"1.2.3.4:allow\n\nno colon here\n", dialect=FEFE, filename="t"))
    err = info.value
    assert (err.filename, err.lineno, err.line) == ("t", 3, b"no colon here")
    assert "loops for ever" in err.reason


# ---- the commands: exit codes, recognition -------------------------------------------


def run(args: list[str], stdin: bytes | None, workdir: Path) -> tuple[int, bytes, str]:
    """``pycdb ARGS`` in this process (standard input a real file when
    given): (exit code, standard output, standard error)."""
    out, err = io.BytesIO(), io.StringIO()
    saved = os.dup(0)
    src = workdir / f"stdin{next(_counter)}"
    src.write_bytes(stdin or b"")
    fd = os.open(src, os.O_RDONLY)
    try:
        os.dup2(fd, 0)
        wrapper = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape")
        with contextlib.redirect_stdout(wrapper), contextlib.redirect_stderr(err):
            code = main(args)
            wrapper.flush()
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(fd)
    return code, out.getvalue(), err.getvalue().replace(str(src), "-")


def test_make_exit_codes(tmp_path: Path) -> None:
    out = str(tmp_path / "o.cdb")
    assert (
        run(["make", "--dialect", FEH, out, out + ".tmp"], b"1.2.3.4/x:allow\n", tmp_path)[0] == 101
    )
    assert run(["make", "--dialect", FEH, out, out + ".tmp"], b"a:alow\n", tmp_path)[0] == 101
    code, _, err = run(["make", "--dialect", FEFE, out, out + ".tmp"], b"x\n", tmp_path)
    assert code == 100 and "-:1: unable to parse this line: x: no ':allow'" in err
    assert not os.path.exists(out)
    code, _, err = run(["make", "--dialect", "bogus", out, out + ".tmp"], b"", tmp_path)
    assert code == 100 and "unknown dialect 'bogus'" in err
    code, _, err = run(["make", "--dialect", FEH, out], b"", tmp_path)
    assert code == 100 and "usage" in err


def test_check_recognises_a_fork_database(tmp_path: Path) -> None:
    path = build(tmp_path, b'2001:db8::/32:allow,WHO="net"\n10.0.0.0/8:deny\n:allow\n', FEH)
    code, out, err = run(["check", "--ip", "2001:db8::5", str(path)], None, tmp_path)
    assert (code, out) == (
        0,
        b"rule 2001:db8::/32:\nset environment variable WHO=net\nallow connection\n",
    )
    assert "recognised as ucspi-tcp6" in err and "checked as ucspi-tcp6" in err
    code, out, _ = run(["check", "--ip", "10.1.2.3", str(path)], None, tmp_path)
    assert out == b"rule 10./8:\ndeny connection\n"
    # Told otherwise, it does otherwise: 0.88 has no IPv6.
    code, out, err = run(["check", "--dialect", CLASSIC, "--ip", "::1", str(path)], None, tmp_path)
    assert (code, out) == (100, b"") and "--dialect ucspi-tcp-ipv6" in err


def test_check_warns_of_a_spelling_tcpserver_never_writes(tmp_path: Path) -> None:
    path = build(tmp_path, RULES, FEFE)
    code, out, err = run(["check", "--ip", "2001:DB8::1", str(path)], None, tmp_path)
    assert out == b"rule :\nset environment variable WHO=default\nallow connection\n"
    assert "writes this client as 2001:db8::1, not 2001:DB8::1" in err


def test_validate_lint_decompile_recognise(tmp_path: Path) -> None:
    for dialect, text in (
        (FEFE, b"2001:db8::1:allow\n2001:db8::allow\n:allow\n"),
        (FEH, b"2001:db8::1:allow\n10.0.0.0/8:deny\n:allow\n"),
    ):
        path = build(tmp_path, text, dialect)
        report = validate_rules(path)
        assert report.sound and report.dialect == dialect
        assert report.dialect_basis.startswith(f"recognised as {dialect}")
        code, out, _ = run(["validate", str(path)], None, tmp_path)
        assert code == 0 and f"recognised as {dialect}".encode() in out
        found = lint_cdb(path)
        assert found.dialect == dialect and found.findings[0].code == "dialect"
        code, out, err = run(["decompile", "--no-comment", str(path)], None, tmp_path)
        assert code == 0 and "written in that dialect" in err
        again = tmp_path / "again.cdb"
        compile(out, again, dialect=dialect)
        assert again.read_bytes() == path.read_bytes()
        # As 0.88's, the fork's keys are impossible, and validate says so.
        assert not validate_rules(path, dialect=CLASSIC).sound


def test_recognition() -> None:
    assert recognise([b"1.2.3.4", b"=a.b", b""]).dialect is None
    assert recognise([b"2001:db8::1"]).dialect == FEFE
    assert recognise([b"joe@2001:0DB8:0000:0000:0000:0000:0000:0001"]).dialect == FEH
    assert recognise([b"_0000e0g0"]).dialect == FEH
    both = recognise([b"2001:db8::1", b"_0000e0g0"])
    assert both.dialect is None and both.mixed and "two dialects" in both.describe()
    assert recognise([b"a:b", b"=x:y", b"joe@2001:db8::/32"]).dialect is None


# ---- decompile rebuilds a fork's database ---------------------------------------------

V4 = st.sampled_from(["10.0.0.0", "192.0.2.7", "1.2.3.4", "0.0.0.0"])
V6 = st.sampled_from(["2001:db8::1", "::1", "2001:db8:0:1::", "fe80::5", "1:0:0:2:0:0:0:3"])
ADDRESS = st.one_of(
    V4,
    V4.map(lambda a: a.rsplit(".", 1)[0] + "."),
    st.tuples(V4, st.integers(1, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
    V6,
    st.tuples(V6, st.integers(1, 128)).map(lambda t: f"{t[0]}/{t[1]}"),
    V6.map(lambda a: "joe@" + a),
    st.sampled_from(["=mail.example.com", "=.example.com", "=", "", "1.2.3.4-9", "_x"]),
)
LINE = st.tuples(ADDRESS, st.sampled_from(["allow", "deny"]), st.sampled_from(["", ',A="1"'])).map(
    lambda t: f"{t[0]}:{t[1]}{t[2]}".encode()
)


@given(st.sampled_from([FEFE, FEH]), st.lists(LINE, max_size=10))
def test_decompile_rebuilds_byte_for_byte(tmp_path: Path, dialect: str, lines: list[bytes]) -> None:
    text = b"\n".join(lines) + b"\n"
    path = tmp_path / "r.cdb"
    try:
        compile(text, path, dialect=dialect)
    except RulesSyntaxError:
        assume(False)
    with decompile(path, dialect=dialect) as back:
        rebuilt = b"".join(back)
    again = tmp_path / "again.cdb"
    compile(rebuilt, again, dialect=dialect)
    assert again.read_bytes() == path.read_bytes(), rebuilt


# ---- convert keeps every decision -----------------------------------------------------


def _clients(text: bytes, with_ipv6: bool) -> list[str]:
    """Addresses around every address, prefix and network in ``text``."""
    found = {"1.2.3.4", "192.0.2.7", "8.8.8.8"}
    if with_ipv6:
        found |= {"2001:db8::1", "2001:db8:0:1::5", "::1", "2001:db9::1"}
    for line in text.split(b"\n"):
        address = line.split(b":allow")[0].split(b":deny")[0].decode("latin-1")
        for part in (address, address.split("@")[-1]):
            try:
                net = ipaddress.ip_network(part.rstrip("."), strict=False)
            except ValueError:
                continue
            if net.version == 6 and not with_ipv6:
                continue
            first, last = int(net.network_address), int(net.broadcast_address)
            size = 2**32 if net.version == 4 else 2**128
            for n in (first - 1, first, (first + last) // 2, last, last + 1):
                if 0 <= n < size:
                    found.add(
                        str(
                            ipaddress.ip_address(n)
                            if net.version == 4
                            else ipaddress.IPv6Address(n)
                        )
                    )
    return sorted(found)


@given(
    st.sampled_from([(a, b) for a in NAMES for b in NAMES if a != b]),
    st.lists(LINE, max_size=8),
    st.sampled_from([None, "mail.example.com", "x.example.com"]),
)
def test_convert_keeps_every_decision(
    tmp_path: Path, pair: tuple[str, str], lines: list[bytes], host: str | None
) -> None:
    source, target = pair
    text = b"\n".join(lines) + b"\n"
    first = tmp_path / "source.cdb"
    try:
        compile(text, first, dialect=source)
    except RulesSyntaxError:
        assume(False)
    try:
        converted = b"".join(convert([text], source, target, "t"))
    except DialectError as exc:
        assert str(exc).startswith("t:") and f"in {target}:" in str(exc)
        return
    assert converted.count(b"\n") == text.count(b"\n")  # line for line
    second = tmp_path / "target.cdb"
    compile(converted, second, dialect=target)
    ipv6 = CLASSIC not in pair
    with RuleSet(first, dialect=source) as a, RuleSet(second, dialect=target) as b:
        for ip in _clients(text, ipv6):
            if not ipv6 and ":" in ip:
                continue
            for info in (None, "joe"):
                da, db = a.check(ip, host, info), b.check(ip, host, info)
                assert (da.allowed, da.env) == (db.allowed, db.env), (ip, host, info, converted)


def test_convert_command(tmp_path: Path) -> None:
    src = tmp_path / "rules"
    src.write_bytes(b"# mine\n10.0.0.0/12:allow\n2001:db8::/32:deny\nno colon\n:allow\n")
    code, out, err = run(["convert", "--from", FEH, "--to", FEFE, str(src)], None, tmp_path)
    assert (code, err) == (0, "")
    assert out == b"# mine\n10.0-15.:allow\n2001:db8::deny\n#no colon\n:allow\n"
    code, out, err = run(["convert", "--from", FEH, "--to", CLASSIC], src.read_bytes(), tmp_path)
    assert (code, out) == (100, b"")
    assert "-:3: cannot write this ucspi-tcp6 rule in ucspi-tcp" in err and "no IPv6" in err
    code, _, err = run(["convert", "--from", FEH], b"", tmp_path)
    assert code == 100 and "--from and --to" in err
    code, _, err = run(["convert", "--from", FEFE, "--to", FEH], b"x\n", tmp_path)
    assert code == 100 and "loops for ever" in err
    with Reader(build(tmp_path, RULES, FEH)) as r:  # the keys of a fork's database
        assert recognise(r.keys()).dialect == FEH


def test_review_messages(tmp_path: Path) -> None:
    """Words found wrong in review: ucspi-tcp6 skips only lines with
    neither ':' nor ','; a 0.88 reading of a fork's database that fails
    names --dialect; an ident answer holding ':' in an IPv4 rule is
    refused for what it is, not as an IPv6 rule."""
    out = str(tmp_path / "o.cdb")
    code, _, err = run(
        ["make", "--dialect", FEH, out, out + ".tmp"], b"foo bar\n1:allow\n", tmp_path
    )
    assert code == 0 and "-:1: neither ':' nor ',' on this line" in err and "ADDRESS,allow" in err
    code, _, err = run(["make", out, out + ".tmp"], b"foo bar\n", tmp_path)
    assert code == 0 and "-:1: no ':' on this line" in err
    fefe = build(tmp_path, b"1::2::3:allow\n", FEFE)
    code, _, err = run(["decompile", str(fefe)], None, tmp_path)
    assert code == 100 and "--dialect ucspi-tcp-ipv6 or --dialect ucspi-tcp6" in err
    code, _, err = run(["decompile", "--dialect", CLASSIC, str(fefe)], None, tmp_path)
    assert code == 100 and "--dialect ucspi-tcp-ipv6" not in err
    src = tmp_path / "ident"
    src.write_bytes(b"jo:e@1.2.3.4:allow\n")
    for to, why in ((FEH, "read the address as IPv6"), (CLASSIC, "ends the address")):
        code, _, err = run(["convert", "--from", FEFE, "--to", to, str(src)], None, tmp_path)
        assert code == 100 and "its ident answer holds ':'" in err and why in err, err
