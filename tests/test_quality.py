"""The project's own checks, in the test run: ruff (lint and format) and
mypy --strict on the package and the examples.  They read the source tree, so they run
once, not once per backend."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """Not a per-backend test: run it once."""
    yield None


@pytest.mark.parametrize(
    "args",
    [
        ["check", "pycdb", "tests", "benchmarks", "fuzz", "examples", "noxfile.py"],
        ["format", "--check", "pycdb", "tests", "benchmarks", "fuzz", "examples", "noxfile.py"],
    ],
    ids=["lint", "format"],
)
def test_ruff(args: list[str]) -> None:
    done = subprocess.run([script("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = subprocess.run([script("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_examples() -> None:
    """examples/relay.py is code users copy: held to the package's standard
    (pyproject.toml's mypy ``files`` covers only the package)."""
    done = subprocess.run(
        [script("mypy"), "--strict", "examples/relay.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


_REVEAL = """
import pycdb
from pycdb.rules import RuleSet
r = pycdb.Reader("x.cdb")
reveal_type(r.get(b"k"))
reveal_type(r.get("k", b""))
reveal_type(r.get(b"k", 0))
reveal_type(r.get_all(b"k"))
reveal_type(r[b"k"])
reveal_type(b"k" in r)
w = pycdb.Writer("x.cdb")
reveal_type(w.add(b"k", "v"))
reveal_type(RuleSet("x.cdb").check("1.2.3.4").env)
"""


def _pep604(text: str) -> str:
    """``Union[a, b]`` as ``a | b`` (mypy writes the first on Python 3.9)."""
    import re

    return re.sub(r"Union\[([^\[\]]*)\]", lambda m: m.group(1).replace(", ", " | "), text)


def test_the_public_api_is_typed_as_a_user_sees_it(tmp_path: Path) -> None:
    """mypy, run on a user's code against the package the source tree
    holds, sees real types (not Any) for the core calls."""
    (tmp_path / "use.py").write_text(_REVEAL)
    done = subprocess.run(
        [script("mypy"), "--strict", "--no-incremental", "use.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )
    revealed = [
        _pep604(line.split('Revealed type is "', 1)[1].rstrip('"').replace("builtins.", ""))
        for line in done.stdout.splitlines()
        if "Revealed type" in line
    ]
    assert revealed == [
        "bytes | None",
        "bytes",
        "bytes | int",
        "list[bytes]",
        "bytes",
        "bool",
        "None",
        "dict[str, str]",
    ], done.stdout


def test_help_shows_no_private_parameters(tmp_path: Path) -> None:
    """help(reader.get) and help(writer.add): the parameters a user passes,
    whichever backend made them (the speed tricks stay inside)."""
    import inspect

    import pycdb

    with pycdb.Writer(tmp_path / "t.cdb") as w:
        w.add(b"k", b"v")
        assert list(inspect.signature(w.add).parameters) == ["key", "value"]
    r = pycdb.Reader(tmp_path / "t.cdb")
    assert str(inspect.signature(r.get)).startswith("(key")
    assert list(inspect.signature(r.get).parameters) == ["key", "default"]
    assert list(inspect.signature(r.get_all).parameters) == ["key"]


def test_the_install_holds_every_module() -> None:
    """What pip installed has every module of the source tree (a
    subpackage left out of pyproject's package list once made
    ``pycdb.rules.lint`` vanish from installs while the checkout worked)."""
    import pycdb

    installed = Path(pycdb.__file__).resolve().parent
    source = ROOT / "pycdb"
    want = {p.relative_to(source) for p in source.rglob("*.py")}
    have = {p.relative_to(installed) for p in installed.rglob("*.py")}
    assert sorted(want - have) == []
