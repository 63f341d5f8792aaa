"""The test suite once per supported CPython: ``nox`` runs them all,
``nox -s tests-3.12`` one, ``nox -s tests-3.12 -- -k reader`` passes
arguments to pytest.

Each session builds the project into a virtual environment of its own
(``pip install '.[test]'``, not editable, with PYCDB_REQUIRE_CFFI=1 so
that a C core that fails to compile stops the install) and runs pytest
there.  With CI set, an interpreter that cannot be found fails its
session instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

#: The CPython versions pyproject.toml's requires-python promises.
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]

ROOT = Path(__file__).resolve().parent
CI = bool(os.environ.get("CI"))

nox.needs_version = ">=2025.10.14"  # the first with download_python
nox.options.sessions = ["tests"]
nox.options.reuse_venv = "no"  # a fresh install every run, as a user's pip makes it
if CI:
    # A version CI cannot find is a failure, never a skip, and never one
    # fetched from elsewhere: the machine's interpreters are under test.
    nox.options.error_on_missing_interpreters = True
    nox.options.download_python = "never"


def _pyenv_interpreters_first_on_path() -> None:
    """Put pyenv's interpreter for each of PYTHONS first on PATH.

    nox looks for ``python3.X``, and pyenv's shims of that name run only
    the versions the shell has selected; the directory that ``pyenv
    prefix 3.X`` names (the newest 3.X.Y installed) always works.
    Without pyenv, PATH stays as it is.
    """
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    pyenv = shutil.which("pyenv") or os.path.join(root, "bin", "pyenv")
    if not os.access(pyenv, os.X_OK):
        return
    found = []
    for version in PYTHONS:
        done = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True)
        prefix = done.stdout.strip()
        if done.returncode == 0 and os.path.isdir(prefix):
            found.append(os.path.join(prefix, "bin"))
    os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_pyenv_interpreters_first_on_path()

#: What is not source: a build from a copy of the checkout without these
#: sees exactly the files there are now.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".nox",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.so",
    ".venv",
    "venv",
    ".*_cache",
    ".hypothesis",
    ".benchmarks",
)


def _source_copy(session: nox.Session) -> str:
    """A fresh copy of the checkout to build from.

    setuptools builds in the source tree, and build/lib keeps whatever an
    earlier build put there: a module deleted since would still be in the
    wheel and the tests would pass against it.  A copy per session builds
    only what is there now, leaves no build/ or egg-info in the checkout,
    and keeps two sessions' builds apart.
    """
    copy = os.path.join(session.create_tmp(), "source")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ROOT, copy, ignore=_NOT_SOURCE, symlinks=True)
    return copy


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Build the project with this Python and run the whole suite."""
    session.install(f"{_source_copy(session)}[test]", env={"PYCDB_REQUIRE_CFFI": "1"})
    # The pytest script, not ``python -m pytest``: -m would put the working
    # directory, the unbuilt source tree, first on sys.path.
    session.run("pytest", "-ra", *session.posargs)
