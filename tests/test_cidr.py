"""``pycdb make --expand-cidr``: an ``A.B.C.D/N`` address in ucspi-tcp
0.88's rules becomes the prefix or range that matches exactly the same
clients, held to Python's :mod:`ipaddress` over random addresses, and to
the real tcprules, which compiles the expanded text to the same bytes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from helpers import run_ref
from hypothesis import example, given
from hypothesis import strategies as st
from rules_helpers import make_here

from pycdb.rules import RuleSet
from pycdb.rules.cidr import classic_address, expand_cidr

NETWORKS = st.builds(
    lambda address, bits: ipaddress.IPv4Network((address, bits), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)


@given(NETWORKS, st.lists(st.integers(0, 2**32 - 1), max_size=20))
@example(ipaddress.IPv4Network("10.0.0.0/12"), [])
@example(ipaddress.IPv4Network("0.0.0.0/0"), [])
@example(ipaddress.IPv4Network("192.0.2.128/25"), [])
@example(ipaddress.IPv4Network("198.51.100.7/32"), [])
def test_matches_exactly_the_network(
    tmp_path: Path, net: ipaddress.IPv4Network, others: list[int]
) -> None:
    text = f'{net}:allow,IN="1"\n:deny\n'.encode()
    code, err, out = make_here(tmp_path, text, "--expand-cidr")
    assert code == 0, err
    address, keys = classic_address(net)
    bits = net.prefixlen
    assert keys == (256 if bits == 0 else 1 if bits % 8 == 0 else 2 ** (8 - bits % 8))
    word = "1 key" if keys == 1 else f"{keys} keys"
    assert f":1: expanded {net} to {address.decode()} ({word})" in err
    # The real tcprules makes the same database of the expanded text.
    expanded = b"".join(expand_cidr([text], "-", []))
    real = run_ref(
        "tcprules", str(tmp_path / "real.cdb"), str(tmp_path / "real.tmp"), input=expanded
    )
    assert real.returncode == 0 and (tmp_path / "real.cdb").read_bytes() == out.read_bytes()
    first, last = int(net.network_address), int(net.broadcast_address)
    probes = {first, last, first - 1, last + 1, (first + last) // 2, *others}
    with RuleSet(out) as rules:
        for n in probes:
            if not 0 <= n < 2**32:
                continue
            client = ipaddress.IPv4Address(n)
            decision = rules.check(str(client))
            assert decision.allowed == (client in net), (net, client, decision)


def test_several_networks_and_the_report(tmp_path: Path) -> None:
    text = (
        b"# nets\n"
        b"10.0.0.0/8:allow\n"
        b"172.16.0.0/12:deny\n"
        b"=mail.example.com:allow\n"
        b'192.0.2.0/26:allow,RELAYCLIENT=""\n'
        b"1.2.3.4:deny\n"
    )
    code, err, out = make_here(tmp_path, text, "--expand-cidr")
    assert code == 0, err
    assert err.splitlines() == [
        "pycdb: note: -:2: expanded 10.0.0.0/8 to 10. (1 key)",
        "pycdb: note: -:3: expanded 172.16.0.0/12 to 172.16-31. (16 keys)",
        "pycdb: note: -:5: expanded 192.0.2.0/26 to 192.0.2.0-63 (64 keys)",
        "pycdb: note: -: --expand-cidr wrote 3 networks as 81 keys",
    ]
    with RuleSet(out) as rules:
        assert rules.check("172.31.255.1").allowed is False
        assert rules.check("172.32.0.1").allowed is True
        assert rules.check("192.0.2.63").env == {"RELAYCLIENT": ""}
        assert rules.check("192.0.2.64").env == {}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"10.1.2.3/8:allow", "bits set past the /8: write 10.0.0.0/8"),
        (b"joe@10.0.0.0/8:allow", "an ident rule names one whole address"),
        (b"10/8:allow", "not an IPv4 network written A.B.C.D/N"),
        (b"10.0.0.0/33:allow", "not an IPv4 network"),
        (b"300.0.0.0/8:allow", "not an IPv4 network"),
    ],
)
def test_what_is_no_network_is_refused(tmp_path: Path, line: bytes, why: str) -> None:
    code, err, out = make_here(tmp_path, b"1.2.3.4:allow\n" + line + b"\n", "--expand-cidr")
    assert code == 100 and not out.exists()
    assert err.startswith("pycdb: fatal: -:2: unable to parse this line: ") and why in err, err


def test_lines_refused_anyway_keep_their_own_reason(tmp_path: Path) -> None:
    code, err, _ = make_here(tmp_path, b"10.0.0.0/8:allowjunk\n", "--expand-cidr")
    assert code == 100 and "10.0.0.0/8:allowjunk: expected the end of the line" in err


def test_without_the_option_a_network_is_a_key_as_tcprules_makes_it(tmp_path: Path) -> None:
    code, _, out = make_here(tmp_path, b"10.0.0.0/8:deny\n")
    assert code == 0
    with RuleSet(out) as rules:
        assert rules.check("10.1.2.3").allowed  # 0.88: the key never matches


def test_only_for_ucspi_tcp(tmp_path: Path) -> None:
    code, err, _ = make_here(tmp_path, b"", "--expand-cidr", "--dialect", "ucspi-tcp6")
    assert code == 100 and "--expand-cidr rewrites ucspi-tcp 0.88's rules" in err
