"""The files in examples/ are what a newcomer runs first (the README's
Set-up compiles, validates, lints and checks examples/tcp.smtp): they
must be clean, or the first thing pycdb teaches is a mistake."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import child_env, script

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    yield None


def test_the_bundled_rules_lint_clean(tmp_path: Path) -> None:
    """examples/tcp.smtp gave a spam source RBLSMTPD="-550 mail from your
    host ...": rblsmtpd puts its own code in front, so clients saw "553
    550 mail from ...", and the README's Set-up command printed pycdb
    lint's rblsmtpd-code warning about its own example."""
    cdb = tmp_path / "tcp.smtp.cdb"
    with open(EXAMPLES / "tcp.smtp", "rb") as text:
        made = subprocess.run(
            [script("pycdb"), "make", str(cdb), str(tmp_path / "tcp.smtp.tmp")],
            stdin=text,
            capture_output=True,
            env=child_env(),
        )
    assert made.returncode == 0, made.stderr
    for target in (EXAMPLES / "tcp.smtp", cdb):
        done = subprocess.run(
            [script("pycdb"), "lint", str(target)], capture_output=True, text=True, env=child_env()
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().endswith(": 0 errors, 0 warnings"), done.stdout
