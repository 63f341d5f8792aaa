"""pycdb's ucspi-tcp-ipv6 dialect against Debian's ucspi-tcp-ipv6 itself
(Felix von Leitner's IPv6 patch to ucspi-tcp 0.88), on hypothesis-generated
rules, databases and client addresses:

* its tcprules (killed after a timeout, as it loops for ever on some
  lines) and ``pycdb make --dialect ucspi-tcp-ipv6``: the same exit code
  and the same database bytes, and a refusal, never a hang, where it
  hangs;
* its tcprulescheck and ``pycdb check --dialect ucspi-tcp-ipv6`` (and
  ``RuleSet.check_text``), on the databases its tcprules wrote and on
  hand-made ones: the same output;
* its tcpserver, in a network namespace of its own where a client can
  have any address (tests/netns_probe.py): ``TCPREMOTEIP`` is
  ``Dialect.client_text`` of the client's address, with and without
  ``-6``, and with ``-x`` it decides each connection as ``RuleSet.check``
  does given the socket address a Python server would see.

The programs come from README.md's test command (unpacked into
/opt/ucspi-tcp-ipv6); without them the tests skip locally and fail in CI.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import STRICT, ipv6_ref, python, unavailable
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rules_helpers import connection_env, make_here

from pycdb._iptext import fefe_fmt
from pycdb.cli import main
from pycdb.cli.check import tcprulescheck_text
from pycdb.rules import RuleSet
from pycdb.rules.dialects import FEFE, get

#: Seconds tcprules gets before it counts as hanging (it takes a few
#: milliseconds on these files); one that pycdb compiles gets CONFIRM
#: seconds more, so that a slow machine cannot fake a hang.
HANG = 0.5
CONFIRM = 20.0
PROBE = Path(__file__).parent / "netns_probe.py"
LANG = get(FEFE)

# ---- addresses, spelled many ways ---------------------------------------------

GROUP = st.sampled_from([0, 0, 1, 5, 0x2001, 0xDB8, 0xFFFF, 0xABCD, 0x10])
ADDRESSES6 = st.lists(GROUP, min_size=8, max_size=8).map(
    lambda gs: ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in gs))
)
IPV4S = st.tuples(*[st.sampled_from([1, 2, 10, 127, 0, 255])] * 4).map(
    lambda t: ipaddress.IPv4Address(bytes(t))
)


def spellings(address: ipaddress.IPv6Address) -> list[bytes]:
    """The same address as ucspi-tcp-ipv6's tcpserver writes it, and as
    people and other programs do."""
    return [
        fefe_fmt(address.packed),
        address.compressed.encode(),
        address.exploded.encode(),
        address.compressed.upper().encode(),
    ]


def cuts(text: bytes) -> list[bytes]:
    """Every prefix of ``text`` cut just after a ':' or a '.'."""
    return [text[: i + 1] for i, c in enumerate(text) if c in (58, 46)]


@st.composite
def addresses(draw: st.DrawFn, pool: list[ipaddress.IPv6Address], v4: list[bytes]) -> bytes:
    """A rule's address, from the addresses of the connections."""
    a = draw(st.sampled_from(pool))
    fefe = fefe_fmt(a.packed)
    v4text = draw(st.sampled_from(v4))
    return draw(
        st.one_of(
            st.just(fefe),
            st.sampled_from(cuts(fefe) or [fefe]),
            st.sampled_from(spellings(a)),
            st.integers(0, 128).map(lambda n: fefe + b"/%d" % n),
            st.sampled_from([b"joe@", b"@"]).map(lambda u: u + fefe),
            st.just(v4text),
            st.sampled_from(cuts(v4text)),
            st.sampled_from([b"=h.example.com", b"=.example.com", b"=", b"", b"::ffff:"]),
            st.just(b"::ffff:" + v4text),
            st.integers(0, 9).map(lambda n: b"1.2.3.%d-%d" % (n, n + 2)),
        )
    )


#: Lines that ucspi-tcp-ipv6's tcprules refuses, or loops on for ever.
ODD_LINES = [
    b"no colon here",
    b"2001:db8::1 : allow",
    b"=.example.com,allow",
    b"   ",
    b"x:allowjunk",
    b"x:allow:deny",
    b"fe80::1-5:allow",
    b"a:Allow",
    b"\r",
]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes | None, bytes | None]]]:
    pool = draw(st.lists(ADDRESSES6, min_size=1, max_size=4))
    v4 = [str(a).encode() for a in draw(st.lists(IPV4S, min_size=1, max_size=2))]
    lines = []
    for _ in range(draw(st.integers(0, 10))):
        address = draw(addresses(pool, v4))
        action = draw(st.sampled_from([b"allow", b"deny"]))
        lines.append(b'%s:%s,PYCDB_RULE="%d"' % (address, action, len(lines)))
    if draw(st.sampled_from([False] * 14 + [True])):  # now and then a line it refuses or hangs on
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(ODD_LINES)))
    text = b"\n".join(lines) + b"\n"
    ips = st.one_of(
        st.sampled_from(pool).flatmap(lambda a: st.sampled_from(spellings(a))),
        st.sampled_from(v4),
        st.sampled_from([b"::ffff:" + v4[0], b"1..2", b"", b"2001:db8::"]),
    )
    conns = draw(
        st.lists(
            st.tuples(
                ips,
                st.sampled_from([None, b"h.example.com", b"x.h.example.com"]),
                st.sampled_from([None, b"joe", b""]),
            ),
            min_size=1,
            max_size=5,
        )
    )
    return text, conns


# ---- running both sides ---------------------------------------------------------

_counter = itertools.count()


def real_tcprules(
    workdir: Path, text: bytes, timeout: float = HANG
) -> tuple[int | str, bytes | None]:
    """ucspi-tcp-ipv6's tcprules: (exit code or "hang", the database)."""
    out = workdir / f"real{next(_counter)}.cdb"
    try:
        done = subprocess.run(
            [ipv6_ref("tcprules"), str(out), f"{out}.tmp"],
            input=text,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "hang", None
    return done.returncode, out.read_bytes() if done.returncode == 0 else None


def pycdb_make(workdir: Path, text: bytes) -> tuple[int, str, bytes | None]:
    """``pycdb make --dialect ucspi-tcp-ipv6`` in this process."""
    code, err, out = make_here(workdir, text, "--dialect", FEFE)
    assert not os.path.exists(f"{out}.tmp")
    return code, err, out.read_bytes() if code == 0 else None


def real_check(path: Path, conn: tuple[bytes, bytes | None, bytes | None]) -> bytes:
    done = subprocess.run(
        [ipv6_ref("tcprulescheck"), str(path)],
        env=connection_env(*conn),  # type: ignore[arg-type]
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def pycdb_check(
    path: Path, conn: tuple[bytes, bytes | None, bytes | None], capfd: pytest.CaptureFixture[bytes]
) -> bytes:
    names = (b"TCPREMOTEIP", b"TCPREMOTEHOST", b"TCPREMOTEINFO")
    saved = {name: os.environb.get(name) for name in names}
    try:
        for name, value in zip(names, conn):
            os.environb.pop(name, None)
            if value is not None:
                os.environb[name] = value
        assert main(["check", "--dialect", FEFE, str(path)]) == 0
    finally:
        for name, old in saved.items():
            os.environb.pop(name, None)
            if old is not None:
                os.environb[name] = old
    return capfd.readouterr()[0]


# ---- tcprules and tcprulescheck ---------------------------------------------------------


@given(scenario())
@example((b"1.2.3.4:allow\nno colon here\n", [(b"1.2.3.4", None, None)]))
@example((b"2001:db8::1:allow\n2001:db8::1 : deny\n", [(b"2001:db8::1", None, None)]))
@example((b'2001:db8:::deny,A="1"\n::1:allow\n:allow\n', [(b"2001:db8::5", None, b"")]))
def test_same_as_the_real_programs(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], case: tuple
) -> None:
    text, conns = case
    want, real_db = real_tcprules(tmp_path, text)
    code, err, db = pycdb_make(tmp_path, text)
    if want == "hang" and code == 0:  # only a slow machine? give it time
        want, real_db = real_tcprules(tmp_path, text, CONFIRM)
    if want == "hang":
        assert code == 100 and "loops for ever" in err, err
        return
    assert code == want, err
    assert db == real_db
    if real_db is None:
        return
    path = tmp_path / "rules.cdb"
    path.write_bytes(real_db)
    capfdbinary.readouterr()
    with RuleSet(path, dialect=FEFE) as rules:
        for conn in conns:
            expected = real_check(path, conn)
            assert pycdb_check(path, conn, capfdbinary) == expected, conn
            assert tcprulescheck_text(rules.check_text(*conn), FEFE) == expected, conn
            address = _address(conn[0])
            if isinstance(address, ipaddress.IPv6Address) and conn[0] == fefe_fmt(address.packed):
                # tcpserver's own spelling: check() from any other agrees (an
                # IPv4-mapped address is the IPv4 client, without -6).
                mapped = address.ipv4_mapped
                text = conn[0] if mapped is None else str(mapped).encode()
                want = rules.check_text(text, conn[1], conn[2])
                assert rules.check(address.exploded, conn[1], conn[2]) == want


def _address(text: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


KEYS = st.one_of(
    ADDRESSES6.flatmap(lambda a: st.sampled_from([*spellings(a), *cuts(fefe_fmt(a.packed))])),
    st.sampled_from([b"", b"=", b":", b"::", b"1.", b"1..", b"joe@::1", b"2001:"]),
    st.binary(max_size=5),
)


@given(
    st.lists(st.tuples(KEYS, st.sampled_from([b"", b"D\0", b"+A=1\0"])), max_size=12),
    st.lists(
        st.tuples(
            st.one_of(ADDRESSES6.map(lambda a: fefe_fmt(a.packed)), st.sampled_from([b"1.2:3"])),
            st.sampled_from([None, b"a.b"]),
            st.sampled_from([None, b"joe"]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_handmade_databases(
    tmp_path: Path,
    capfdbinary: pytest.CaptureFixture[bytes],
    records: list[tuple[bytes, bytes]],
    conns: list[tuple[bytes, bytes | None, bytes | None]],
) -> None:
    """Any keys (also ones no tcprules writes) and addresses cut at every
    ':' and '.': the real tcprulescheck's key order."""
    from rules_helpers import write_cdb

    path = tmp_path / "rules.cdb"
    write_cdb(path, records)
    capfdbinary.readouterr()
    for conn in conns:
        assert pycdb_check(path, conn, capfdbinary) == real_check(path, conn), conn


# ---- tcpserver, in a network namespace of its own -------------------------------------


def probe(request: dict[str, object]) -> list[dict[str, object]]:
    """tests/netns_probe.py in a new network namespace (root only)."""
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("ip") is None or os.geteuid() != 0:
        message = "a network namespace needs root, unshare (util-linux) and ip (iproute2)"
        if STRICT and os.geteuid() == 0:
            pytest.fail(message)
        unavailable(message)
    done = subprocess.run(
        [unshare, "--net", *python(str(PROBE))],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=300,
    )
    if done.returncode != 0:
        unavailable(f"the namespace probe failed: {done.stderr.decode(errors='replace')[-500:]}")
    answers: list[dict[str, object]] = json.loads(done.stdout)["clients"]
    return answers


def client_address(address: ipaddress.IPv6Address) -> bool:
    """An address a client can connect from (in the probe's namespace)."""
    return not (
        address.is_multicast
        or address.is_link_local
        or address.is_unspecified
        or address.ipv4_mapped is not None
        or address.is_site_local
    )


TRICKY = [
    "2001:db8:0:1:1:1:1:1",  # a single zero group: compressed all the same
    "2001:db8:1:2:3:4:5:0",  # a zero last group
    "2001:db8:0:0:1:0:0:1",  # two runs of zeros as long: the first one goes
    "1:0:0:2:0:0:0:3",  # the longer run goes, even second
    "1:0:2:3:4:5:0:0",  # a single zero loses to a longer run
    "::1",
    "::2:0:0:0:1",
    "2001:db8::ffff:102:304",  # looks mapped, is not
    "::102:304",  # IPv4-compatible: hex, not dotted
    "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
]


@settings(max_examples=8)
@given(st.lists(ADDRESSES6.filter(client_address), min_size=20, max_size=60, unique=True))
def test_tcpserver_writes_clients_as_client_text(
    addresses: list[ipaddress.IPv6Address],
) -> None:
    clients = [str(a) for a in addresses] + TRICKY + ["127.0.0.5", "10.1.2.3", "192.0.2.77"]
    for flags, six in (([], False), (["-6"], True)):
        answers = probe(
            {"tcpserver": ipv6_ref("tcpserver"), "flags": flags, "rules": None, "clients": clients}
        )
        for answer in answers:
            env = answer["env"]
            assert isinstance(env, dict)
            address = ipaddress.ip_address(str(answer["address"]))
            want = LANG.client_text(address, mapped_as_ipv6=six).decode()
            assert env["TCPREMOTEIP"] == want, (answer, six)


@settings(max_examples=6)
@given(scenario())
def test_tcpserver_decides_as_ruleset_check(tmp_path: Path, case: tuple) -> None:
    """Rules compiled by the real tcprules, tcpserver -x on them, and
    RuleSet.check given the socket address a dual-stack Python server
    sees (an IPv4 client as ('::ffff:a.b.c.d', port, 0, 0))."""
    text, conns = case
    want, db = real_tcprules(tmp_path, text)
    if db is None:
        return
    path = tmp_path / "rules.cdb"
    path.write_bytes(db)
    clients = []
    for ip, _, _ in conns:
        address = _address(ip)
        if isinstance(address, ipaddress.IPv4Address) or (
            isinstance(address, ipaddress.IPv6Address) and client_address(address)
        ):
            clients.append(str(address))
    clients += ["127.0.0.9", "2001:db8::1", "2001:db8:0:1::5"]
    answers = probe(
        {"tcpserver": ipv6_ref("tcpserver"), "flags": [], "rules": str(path), "clients": clients}
    )
    with RuleSet(path, dialect=FEFE) as rules:
        for answer in answers:
            address = ipaddress.ip_address(str(answer["address"]))
            peer = (
                (f"::ffff:{address}", 40000, 0, 0)
                if address.version == 4
                else (str(address), 40000, 0, 0)
            )
            decision = rules.check(peer)
            env = answer["env"]
            assert isinstance(env, dict)
            assert decision.allowed == answer["served"], (answer, decision)
            if decision.allowed:
                assert decision.env.get("PYCDB_RULE") == env.get("PYCDB_RULE"), (answer, decision)
