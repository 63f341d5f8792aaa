"""The rules-check issue's benchmarks: tcpserver's decision for a
connection on a 1,000,000-line rules database, ``RuleSet.check`` on both
backends against the same key order written in Python over cdbx's ``get``
(what a user would write today), side by side.

Three kinds of connection, a batch of different ones for each:

* ``nothing``: no key matches, so every key of the order is tried (ip,
  host with four labels and ident info all given: 12 lookups);
* ``exact-ip``: the ip is a rule of its own (one lookup);
* ``host-suffix``: an ``=.suffix`` rule decides (seven lookups).

The database is compiled with the real ``tcprules`` once per session.
Run: ``pytest benchmarks/bench_check.py --benchmark-enable`` (on a shared
machine add ``--benchmark-timer=time.process_time``); the ratio table at
the end gives ns per check.  ``PYCDB_BENCH_N`` sets the number of lines.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from _bench import REFERENCE, measured

from pycdb import _backend
from pycdb.rules import RuleSet

N = int(os.environ.get("PYCDB_BENCH_N", "1000000"))
BATCH = 5000
KINDS = ["nothing", "exact-ip", "host-suffix"]
REFERENCE.update({f"check-{kind}": "cdbx-python" for kind in KINDS})

cdbx = pytest.importorskip("cdbx")

#: A connection: (ip, host or None, info or None).
Conn = tuple  # tuple[str, str | None, str | None]


def python_check(
    get: Callable[[str], bytes | None], ip: str, host: str | None, info: str | None
) -> tuple[str, bytes] | None:
    """tcpserver's key order over a plain ``get``, written the direct way
    (early returns, no generator): the deciding key and its data."""
    if info is not None:
        key = info + "@" + ip
        data = get(key)
        if data is not None:
            return key, data
        if host is not None:
            key = info + "@=" + host
            data = get(key)
            if data is not None:
                return key, data
    data = get(ip)
    if data is not None:
        return ip, data
    if host is not None:
        key = "=" + host
        data = get(key)
        if data is not None:
            return key, data
    i = ip.rfind(".")
    while i >= 0:
        key = ip[: i + 1]
        data = get(key)
        if data is not None:
            return key, data
        i = ip.rfind(".", 0, i)
    if host is not None:
        i = host.find(".")
        while i >= 0:
            key = "=" + host[i:]
            data = get(key)
            if data is not None:
                return key, data
            i = host.find(".", i + 1)
        data = get("=")
        if data is not None:
            return "=", data
    data = get("")
    if data is not None:
        return "", data
    return None


class Data:
    """The rules text (``N`` lines: exact ips, ip prefixes, ranges,
    ``=host`` lines with two variables, ``=.suffix`` lines, ``user@ip``
    lines), its cdb, and a batch of connections of each kind."""

    def __init__(self, directory: Path) -> None:
        rnd = random.Random(20261127)
        self.dir = directory
        n_exact = N * 40 // 100
        n_prefix = N * 10 // 100
        n_range = N * 5 // 100
        n_suffix = N * 5 // 100
        n_user = N * 15 // 100
        n_host = N - n_exact - n_prefix - n_range - n_suffix - n_user
        ips = [
            f"10.{x >> 16}.{(x >> 8) & 255}.{x & 255}" for x in rnd.sample(range(1 << 24), n_exact)
        ]
        lines = []
        for j, ip in enumerate(ips):
            if j % 10 == 0:
                lines.append(f"{ip}:deny")
            elif j % 3 == 0:
                lines.append(f'{ip}:allow,RELAYCLIENT=""')
            else:
                lines.append(f"{ip}:allow")
        for x in rnd.sample(range(2 << 16), n_prefix):
            lines.append(f"{11 + (x >> 16)}.{(x >> 8) & 255}.{x & 255}.:deny")
        for x in rnd.sample(range(1 << 22), n_range):
            low = (x & 63) * 4
            lines.append(f"13.{x >> 14}.{(x >> 6) & 255}.{low}-{low + 3}:allow")
        for k in range(n_suffix):
            lines.append(f'=.domain{k}.example:allow,RELAYCLIENT="",ROUTE="{k}"')
        for k in range(n_host):
            lines.append(f'=h{k}.site{k % 1000}.example:allow,RELAYCLIENT="",GREETING="hi {k}"')
        for k in range(n_user):
            lines.append(f'user{k}@{ips[k % len(ips)]}:allow,RELAYCLIENT=""')
        rnd.shuffle(lines)
        self.text = directory / "rules.txt"
        self.text.write_text("\n".join(lines) + "\n")
        self.path = directory / "rules.cdb"
        with open(self.text, "rb") as f:
            subprocess.run(
                ["tcprules", str(self.path), str(self.path) + ".tmp"], stdin=f, check=True
            )
        # 198.51.100.0/24 and 203.0.113.0/24 (documentation nets) and the
        # .invalid domain appear in no rule, nor does the key "=" or "".
        self.conns: dict[str, list[Conn]] = {
            "nothing": [
                (
                    f"{rnd.choice((198, 203))}.{rnd.choice((51, 0))}.{rnd.choice((100, 113))}."
                    f"{rnd.randrange(256)}",
                    f"mx{rnd.randrange(10**6)}.dept{rnd.randrange(99)}.corp.invalid",
                    "nobody",
                )
                for _ in range(BATCH)
            ],
            "exact-ip": [
                (ip, f"client{rnd.randrange(10**6)}.example.net", None)
                for ip in rnd.sample(ips, BATCH)
            ],
            "host-suffix": [
                (
                    f"198.51.100.{rnd.randrange(256)}",
                    f"mx{rnd.randrange(10)}.mail.domain{rnd.randrange(n_suffix)}.example",
                    None,
                )
                for _ in range(BATCH)
            ],
        }


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    if shutil.which("tcprules") is None:
        pytest.skip("tcprules (Debian ucspi-tcp) is not installed")
    return Data(tmp_path_factory.mktemp("check"))


def _checker(impl: str, path: Path) -> Callable[[str, str | None, str | None], Any]:
    if impl.startswith("pycdb-"):
        with _backend.use(impl.split("-")[1]):
            return RuleSet(path).check
    get = cdbx.CDB(str(path)).get

    def check(ip: str, host: str | None, info: str | None) -> Any:
        return python_check(get, ip, host, info)

    return check


@pytest.mark.parametrize("impl", ["pycdb-cffi", "pycdb-pure", "cdbx-python"])
@pytest.mark.parametrize("kind", KINDS)
def test_check(benchmark: Any, data: Data, impl: str, kind: str) -> None:
    check = _checker(impl, data.path)
    conns = data.conns[kind]
    # Every implementation must reach the same decisions, and the batch
    # must be of the kind it claims.
    reference = _checker("cdbx-python", data.path)
    for conn in conns[:200]:
        want = reference(*conn)
        got = check(*conn)
        if impl.startswith("pycdb-"):
            got = None if got.rule is None else (got.rule, got.data)
        assert got == want, conn
        assert (want is None) == (kind == "nothing"), conn
        if kind == "exact-ip":
            assert want[0] == conn[0]
        if kind == "host-suffix":
            assert want[0].startswith("=.domain")

    def run() -> None:
        for ip, host, info in conns:
            check(ip, host, info)

    benchmark.group = f"check-{kind}"
    benchmark.pedantic(run, rounds=5 if impl == "pycdb-pure" else 15, warmup_rounds=1)
    measured(benchmark, f"check-{kind}", impl, per=len(conns))
