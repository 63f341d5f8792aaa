"""Which backend gets loaded, checked in fresh interpreters: forcing one
with PYCDB_BACKEND, refusing a bogus name, an ImportError that says why
when the C core is forced but missing (never a silent fallback), and in
CI (STRICT) the cffi backend as the default one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import STRICT, unavailable

from pycdb import _backend


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    """Each test here starts its own interpreters: run it once."""
    yield None


#: Makes the compiled core impossible to import, as on an install where
#: the C build failed.
HIDE_C = textwrap.dedent(
    """
    import sys
    class HideCompiledCore:
        def find_spec(self, name, path=None, target=None):
            if name in ("pycdb._cdb_c", "pycdb._cdb_lookup"):
                raise ImportError(f"No module named {name!r} (hidden by the test)")
            return None
    sys.meta_path.insert(0, HideCompiledCore())
    """
)

REPORT = textwrap.dedent(
    """
    import json, os, tempfile
    import pycdb
    d = tempfile.mkdtemp()
    path = os.path.join(d, "t.cdb")
    with pycdb.Writer(path) as w:
        w.add(b"k", b"v")
    r = pycdb.Reader(path)
    print(json.dumps({"BACKEND": pycdb.BACKEND, "reader": r.backend, "writer": w.backend,
                      "value": r[b"k"].decode()}))
    """
)


def python(
    code: str, backend: str | None, hide_c: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYCDB_BACKEND"}
    if backend is not None:
        env["PYCDB_BACKEND"] = backend
    # Run from an empty directory, so the source tree cannot shadow the
    # installed package.
    return subprocess.run(
        [sys.executable, "-c", (HIDE_C if hide_c else "") + code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.abspath(__file__)) + "/fixtures",
    )


def report(backend: str | None, hide_c: bool = False) -> dict[str, str]:
    proc = python(REPORT, backend, hide_c)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def cffi_built() -> bool:
    return "cffi" in _backend.available()


@pytest.mark.parametrize("name", ["cffi", "pure"])
def test_forcing_a_backend(name):
    if name == "cffi" and not cffi_built():
        unavailable("the cffi backend does not import")
    assert report(name) == {"BACKEND": name, "reader": name, "writer": name, "value": "v"}


@pytest.mark.parametrize("bogus", ["bogus", "CFFI", "c", " pure"])
def test_a_bogus_backend_is_an_importerror(bogus):
    proc = python("import pycdb", bogus)
    assert proc.returncode == 1
    assert "ImportError: PYCDB_BACKEND must be one of cffi, pure, not " + repr(bogus) in proc.stderr


def test_forcing_cffi_when_it_is_missing_says_why():
    proc = python("import pycdb", "cffi", hide_c=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: pycdb's C extension is not available: ")
    assert "hidden by the test" in last  # the underlying reason
    assert "PYCDB_BACKEND=pure" in last  # and what to do


def test_missing_cffi_is_never_silently_replaced_when_forced():
    code = "import pycdb; print(pycdb.BACKEND)"
    proc = python(code, "cffi", hide_c=True)
    assert proc.returncode != 0 and proc.stdout == ""


def test_unforced_default_falls_back_to_pure_when_c_is_missing():
    """Outside CI an install without a compiler still works, on pure: that
    is the unforced default, and BACKEND says so."""
    assert report(None, hide_c=True)["BACKEND"] == "pure"
    assert report("pure", hide_c=True)["BACKEND"] == "pure"


def test_the_fallback_is_loud():
    """pip hides what setup.py says about a failed compile, so the import
    says it: a RuntimeWarning naming the reason, unless pure was asked for."""
    proc = python("import pycdb", None, hide_c=True)
    assert proc.returncode == 0
    assert "RuntimeWarning: pycdb: the C core is not available" in proc.stderr
    assert "hidden by the test" in proc.stderr and "PYCDB_BACKEND=pure" in proc.stderr
    assert python("import pycdb", "pure", hide_c=True).stderr == ""
    if "cffi" in _backend.available():
        assert python("import pycdb", None).stderr == ""


def test_default_backend():
    """The backend a plain `import pycdb` picks, in the environment the
    suite runs in.  In CI (STRICT) it must be cffi: a pure fallback there
    would mean the C core silently failed to build or load, or that
    PYCDB_BACKEND overrides it."""
    env_choice = os.environ.get("PYCDB_BACKEND")
    proc = python("import pycdb; print(pycdb.BACKEND)", env_choice)
    if STRICT:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "cffi", "CI expects the cffi backend to be the default"
    elif env_choice:
        assert proc.stdout.strip() == env_choice
    else:
        assert proc.stdout.strip() == ("cffi" if cffi_built() else "pure")


def test_strict_mode_is_detected():
    """STRICT follows CI=... or PYCDB_REQUIRE_CFFI=1, so the check above
    really runs in CI."""
    code = "import helpers; print(helpers.STRICT)"
    tests = os.path.dirname(os.path.abspath(__file__))
    for env, want in (
        ({"CI": "true"}, "True"),
        ({"PYCDB_REQUIRE_CFFI": "1"}, "True"),
        ({}, "False"),
    ):
        base = {k: v for k, v in os.environ.items() if k not in ("CI", "PYCDB_REQUIRE_CFFI")}
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env={**base, **env, "PYTHONPATH": tests},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.stdout.strip() == want, proc.stderr


def test_use_switches_and_restores():
    before = _backend.current()
    with _backend.use("pure") as module:
        assert module.NAME == "pure"
        import pycdb

        assert pycdb.BACKEND == "pure"
    assert _backend.current() is before
    with pytest.raises(ImportError, match="must be one of"), _backend.use("bogus"):
        pass
    assert _backend.current() is before


def test_available_lists_pure_always():
    names = _backend.available()
    assert "pure" in names
    if STRICT:
        assert names == ["cffi", "pure"]


def test_subprocesses_import_the_installed_package() -> None:
    """A ``python -c`` started by a test (from the repository root, where
    the source tree lies) imports the same pycdb as the tests do."""
    import pycdb

    out = subprocess.run(
        [sys.executable, "-c", "import pycdb; print(pycdb.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout.strip() == pycdb.__file__
