"""Every recorded run of the IPv6 forks' tcprules and tcprulescheck,
reproduced by ``pycdb make --dialect`` and ``pycdb check --dialect`` on
both backends.

``../shared/vectors`` (beside the repository, as CI checks it out; see
its README) records what the real programs did on generated rules files:
ucspi-tcp6 1.11.4 (``ucspi-tcp6.json``) and ucspi-tcp 0.88 with Felix von
Leitner's IPv6 patch, Debian's ucspi-tcp-ipv6 (``fefe-ipv6.json``).  For
each case: the exit code of ``tcprules`` (``"hang"`` where it never
finished: pycdb refuses such a file, exit 100, and publishes nothing),
the database as ``cdbdump`` prints it, and for each connection
tcprulescheck's exit code and standard output.  Without the vectors the
tests skip locally and fail in CI.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from helpers import run_ref, unavailable
from rules_helpers import make_here

from pycdb import Reader
from pycdb.cli import main
from pycdb.rules.dialects import FEFE, FEH, recognise

ROOT = Path(__file__).resolve().parent.parent
FILES = {FEFE: "fefe-ipv6.json", FEH: "ucspi-tcp6.json"}


def vectors_dir() -> Path | None:
    """``../shared/vectors`` next to the repository, or next to the
    nearest directory above it that has one (a worktree sits one level
    deeper than its clone); PYCDB_VECTORS names another."""
    given = os.environ.get("PYCDB_VECTORS")
    if given:
        return Path(given)
    for above in ROOT.parents:
        candidate = above / "shared" / "vectors"
        if candidate.is_dir():
            return candidate
    return None


@cache
def cases(dialect: str) -> list[dict[str, Any]]:
    where = vectors_dir()
    if where is None or not (where / FILES[dialect]).exists():
        return []
    data = json.loads((where / FILES[dialect]).read_text(encoding="utf-8"))
    assert data["dialect"] in ("fefe-ipv6", "ucspi-tcp6-1.11")
    return list(data["cases"])


def _params() -> list[Any]:
    out = []
    for dialect in FILES:
        found = cases(dialect)
        out += [pytest.param(dialect, i, id=f"{dialect}-{i}") for i in range(len(found))]
    return out or [pytest.param(None, None, id="no-vectors")]


def check(
    path: Path, dialect: str, env: dict[str, str], capfd: pytest.CaptureFixture[bytes]
) -> tuple[int, bytes]:
    """``pycdb check --dialect D PATH`` in this process, with the
    connection's variables (and no others of its kind) in the environment."""
    names = ("TCPREMOTEIP", "TCPREMOTEHOST", "TCPREMOTEINFO")
    saved = {name: os.environb.get(name.encode()) for name in names}
    try:
        for name in names:
            os.environb.pop(name.encode(), None)
            if name in env:
                os.environb[name.encode()] = env[name].encode("latin-1")
        code = main(["check", "--dialect", dialect, str(path)])
    finally:
        for name, old in saved.items():
            os.environb.pop(name.encode(), None)
            if old is not None:
                os.environb[name.encode()] = old
    out, _ = capfd.readouterr()
    return code, out


def dump(path: Path) -> bytes:
    """The database as cdbdump prints it (freecdb's own program)."""
    done = run_ref("cdbdump", input=path.read_bytes())
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(("dialect", "index"), _params())
def test_vector(
    dialect: str | None,
    index: int | None,
    tmp_path: Path,
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    if dialect is None or index is None:
        unavailable(
            "no test vectors: ../shared/vectors is not beside the repository "
            "(set PYCDB_VECTORS to the directory)"
        )
    case = cases(dialect)[index]
    text = case["rules"].encode("latin-1")
    code, err, out_cdb = make_here(tmp_path, text, "--dialect", dialect)
    capfdbinary.readouterr()
    assert not os.path.exists(f"{out_cdb}.tmp")
    if case["exit"] == "hang":
        assert code == 100, err
        assert "loops for ever" in err and not out_cdb.exists()
        return
    assert code == case["exit"], err
    if code:
        assert not out_cdb.exists() and "unable to parse this line" in err
        return
    assert dump(out_cdb) == case["dump"].encode("latin-1")
    with Reader(out_cdb) as reader:
        recognised = recognise(reader.keys()).dialect
    assert recognised in (None, dialect)  # never the other fork
    for probe in case["checks"]:
        got = check(out_cdb, dialect, probe["env"], capfdbinary)
        assert got == (probe["exit"], probe["stdout"].encode("latin-1")), probe["env"]


def test_every_case_is_here() -> None:
    """The recorded files are whole: 120 runs of each program, every
    outcome represented."""
    for dialect in FILES:
        found = cases(dialect)
        if not found:
            unavailable(f"no test vectors for {dialect}")
        assert len(found) == 120
        outcomes = {str(c["exit"]) for c in found}
        assert outcomes == ({"0", "100", "hang"} if dialect == FEFE else {"0", "101"})
