"""Helpers for the rules-check tests: compile rules text, ask the real
tcprulescheck, write hand-made rules databases, and the hypothesis
strategies for rules and connections."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
from pathlib import Path

from helpers import child_env, ref, script
from hypothesis import strategies as st

import pycdb


def compile_rules(text: bytes, path: str | os.PathLike[str]) -> None:
    """Compile tcprules text to ``path`` with the real tcprules (a
    temporary file beside it, then rename: readers see the old file or the
    new one).  The differential tests use it so that the database under
    test comes from the reference, not from pycdb."""
    path = os.fspath(path)
    done = subprocess.run(
        [ref("tcprules"), path, path + ".tmp"], input=text, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def pycdb_make(text: bytes, path: str | os.PathLike[str]) -> None:
    """``pycdb make PATH PATH.tmp < text``, the installed command, in a
    process of its own, on the active backend."""
    path = os.fspath(path)
    done = subprocess.run(
        [script("pycdb"), "make", path, path + ".tmp"],
        input=text,
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def write_cdb(path: str | os.PathLike[str], records: list[tuple[bytes, bytes]]) -> None:
    """A hand-made rules database (atomically replaces ``path``)."""
    with pycdb.Writer(path) as w:
        for key, data in records:
            w.add(key, data)


def connection_env(ip: bytes | None, host: bytes | None, info: bytes | None) -> dict[bytes, bytes]:
    """The environment tcprulescheck reads a connection from (None: unset)."""
    env = {b"PATH": os.environb.get(b"PATH", b"/usr/bin:/bin")}
    for name, value in ((b"TCPREMOTEIP", ip), (b"TCPREMOTEHOST", host), (b"TCPREMOTEINFO", info)):
        if value is not None:
            env[name] = value
    return env


def tcprulescheck(
    path: str | os.PathLike[str], ip: bytes | None, host: bytes | None, info: bytes | None
) -> subprocess.CompletedProcess[bytes]:
    """The real tcprulescheck on ``path`` for a connection."""
    return subprocess.run(
        [ref("tcprulescheck"), os.fspath(path)],
        env=connection_env(ip, host, info),  # type: ignore[arg-type]
        capture_output=True,
        timeout=60,
    )


def rule_line(address: bytes, deny: bool, env: list[tuple[bytes, bytes]]) -> bytes:
    """One tcprules line; each value is delimited by a byte it lacks."""
    line = address + (b":deny" if deny else b":allow")
    for name, value in env:
        delim = next(d for d in b"\"'/|%" if d not in value)
        line += b"," + name + b"=" + bytes([delim]) + value + bytes([delim])
    return line + b"\n"


# ---- strategies ----------------------------------------------------------------

Conn = tuple  # (ip, host, info): bytes, bytes or None, bytes or None

# ---- generated rules and connections ---------------------------------------
#
# A few octets, labels and ident names, so that rules and connections
# share prefixes and suffixes often, and sometimes do not.

OCTETS = st.sampled_from([b"1", b"10", b"127", b"0", b"255", b"2"])
IPS = st.lists(OCTETS, min_size=4, max_size=4).map(b".".join)
ODD_IPS = st.sampled_from([b"", b".", b"1.2.3.", b".1.2", b"1..2", b"10", b"::1", b"x.y"])
LABELS = st.sampled_from([b"a", b"mx", b"mail", b"example", b"com", b"b-c", b"x1"])
HOSTS = st.one_of(
    st.lists(LABELS, min_size=1, max_size=6).map(b".".join),
    st.sampled_from([b"", b".", b".com", b"a.", b"example.com.", b"..a"]),
)
INFOS = st.sampled_from([b"", b"joe", b"root", b"x@y"])
NAMES = st.sampled_from([b"A", b"RELAYCLIENT", b"", b"B_2", b"TCPREMOTEIP"])
VALUES = st.sampled_from([b"", b"1", b"2", b"x=y", b"a:b,c", b"sp ace", b"\xc3\xa9"])


def prefixes(ip: bytes) -> list[bytes]:
    return [ip[: i + 1] for i in range(len(ip)) if ip[i : i + 1] == b"."]


def suffixes(host: bytes) -> list[bytes]:
    return [host[i:] for i in range(len(host)) if host[i : i + 1] == b"."]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[bytes, list[Conn]]:
    """Rules text and connections drawn from one pool of names."""
    ips = draw(st.lists(IPS, min_size=1, max_size=4))
    hosts = draw(st.lists(HOSTS, min_size=1, max_size=3))
    infos = draw(st.lists(INFOS, min_size=1, max_size=2))
    ip = st.sampled_from(ips)
    host = st.sampled_from(hosts)
    info = st.sampled_from(infos)
    addresses = st.one_of(
        ip,
        ip.flatmap(lambda a: st.sampled_from(prefixes(a))),
        host.map(lambda h: b"=" + h),
        host.flatmap(lambda h: st.sampled_from(suffixes(h) or [b""])).map(lambda s: b"=" + s),
        st.sampled_from([b"=", b""]),
        st.tuples(info, ip).map(lambda t: t[0] + b"@" + t[1]),
        st.tuples(info, host).map(lambda t: t[0] + b"@=" + t[1]),
        st.tuples(OCTETS, st.integers(0, 3), st.integers(0, 12)).map(
            lambda t: b"1.2.%s.%d-%d" % (t[0], t[1], t[2])
        ),
    )
    lines = draw(
        st.lists(
            st.tuples(addresses, st.booleans(), st.lists(st.tuples(NAMES, VALUES), max_size=3)),
            max_size=12,
        )
    )
    text = b"".join(rule_line(a, deny, env) for a, deny, env in lines)
    conns = draw(
        st.lists(
            st.tuples(
                st.one_of(ip, IPS, ODD_IPS),
                st.one_of(st.none(), host, HOSTS),
                st.one_of(st.none(), info, INFOS),
            ),
            min_size=1,
            max_size=5,
        )
    )
    return text, conns


# ---- hand-made databases: data items in every order, odd keys --------------

ITEMS = st.one_of(
    st.sampled_from(
        [b"D", b"Dx", b"+A=1", b"+A=2", b"+B=", b"+NOEQ", b"+", b"+=v", b"", b"X", b"-A=1"]
    ),
    st.binary(max_size=6).filter(lambda b: b"\0" not in b),
)
DATA = st.one_of(
    st.tuples(st.lists(ITEMS, max_size=6), st.booleans()).map(
        lambda t: b"\0".join(t[0]) + (b"\0" if t[1] else b"")
    ),
    st.binary(max_size=20),
)
RAW_LABELS = st.sampled_from([b"a", b"mx", b"com", b"\xff", b"\xc3\xa9", b"x:y", b"sp ace"])
RAW_HOSTS = st.lists(RAW_LABELS, min_size=1, max_size=4).map(b".".join)


def candidate_keys(ip: bytes, host: bytes | None, info: bytes | None) -> list[bytes]:
    """tcpserver's keys for a connection, written out plainly (the test
    only uses them to give hand-made files keys that will be asked for;
    tcprulescheck judges the order)."""
    keys = []
    if info is not None:
        keys.append(info + b"@" + ip)
        if host is not None:
            keys.append(info + b"@=" + host)
    keys.append(ip)
    if host is not None:
        keys.append(b"=" + host)
    keys += reversed(prefixes(ip))
    if host is not None:
        keys += [b"=" + s for s in suffixes(host)] + [b"="]
    return [*keys, b""]


@st.composite
def handmade(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], list[Conn]]:
    conns = draw(
        st.lists(
            st.tuples(
                st.one_of(IPS, ODD_IPS),
                st.one_of(st.none(), RAW_HOSTS),
                st.one_of(st.none(), INFOS),
            ),
            min_size=1,
            max_size=4,
        )
    )
    keys = sorted({k for conn in conns for k in candidate_keys(*conn)})
    records = draw(
        st.lists(
            st.tuples(st.one_of(st.sampled_from(keys), st.binary(max_size=4)), DATA),
            max_size=15,
        )
    )
    return records, conns


# ---- pycdb make in this process -----------------------------------------------

_made = itertools.count()


def make_here(workdir: Path, text: bytes, *options: str) -> tuple[int, str, Path]:
    """``pycdb make [OPTIONS] OUT.cdb OUT.tmp < text`` in this process,
    standard input a real file (as under a shell's ``<``): (exit code,
    standard error with the input's path written ``-``, OUT.cdb, a new
    name in ``workdir`` each call).  The input file is removed after."""
    from pycdb.cli import main

    src = workdir / f"in{next(_made)}"
    src.write_bytes(text)
    out = workdir / f"out{next(_made)}.cdb"
    fd = os.open(src, os.O_RDONLY)
    saved = os.dup(0)
    err = io.StringIO()
    try:
        os.dup2(fd, 0)
        with contextlib.redirect_stderr(err):
            code = main(["make", *options, str(out), f"{out}.tmp"])
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(fd)
        src.unlink()
    return code, err.getvalue().replace(str(src), "-"), out


# ---- rules files tcprules accepts (validate/decompile round trips) --------------
#
# Built from test_make_differential's addresses (every range shape, '='
# and '@' addresses, odd bytes) with only well-formed actions and
# instructions, so that nearly every file compiles: the round-trip tests
# skip the few tcprules refuses (a range bound that is not a number, a
# last delimiter that is a blank) without tripping hypothesis' filter
# health check.


from test_make_differential import _address, _delims  # noqa: E402


@st.composite
def _good_instruction(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from([b"RELAYCLIENT", b"RBLSMTPD", b"", b"A,B", b"\xe9", b"N\0"]))
    d = draw(_delims)
    value = draw(st.binary(max_size=6)).replace(b"\n", b"").replace(d, b"")
    return b"," + name + b"=" + d + value + d


@st.composite
def _good_line(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["rule"] * 12 + ["comment", "blank", "nocolon"]))
    if kind == "comment":
        return b"#" + draw(st.binary(max_size=8)).replace(b"\n", b"")
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t "]))
    if kind == "nocolon":
        return draw(st.sampled_from([b"1.2.3.4", b"x y", b"1-2"]))
    action = draw(st.sampled_from([b"allow", b"allow", b"deny"]))
    instructions = b"".join(draw(st.lists(_good_instruction(), max_size=3)))
    trailing = draw(st.sampled_from([b""] * 6 + [b" ", b"\t", b" \t"]))
    return draw(_address) + b":" + action + instructions + trailing


#: Rules text that tcprules almost always compiles.
GOOD_RULES = st.builds(
    lambda lines, newline: b"\n".join(lines) + (b"\n" if newline else b""),
    st.lists(_good_line(), max_size=10),
    st.booleans(),
)
