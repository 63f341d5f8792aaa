"""Which backend gets loaded, checked in fresh interpreters: forcing one
with PYCDB_BACKEND, refusing a bogus name, an ImportError that says why
when the C core is forced but missing (never a silent fallback), and in
CI (STRICT) the cffi backend as the default one."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import STRICT, child_env, python, unavailable

from pycdb import _backend

ROOT = Path(__file__).resolve().parent.parent


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
            if name == "pycdb._cdb":
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


def run_python(
    code: str, backend: str | None, hide_c: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -c CODE`` with PYCDB_BACKEND set to ``backend`` exactly, or
    unset (these tests are about the variable itself, so they do not take
    the active backend from child_env())."""
    env = {k: v for k, v in os.environ.items() if k != "PYCDB_BACKEND"}
    if backend is not None:
        env["PYCDB_BACKEND"] = backend
    return subprocess.run(
        python("-c", (HIDE_C if hide_c else "") + code),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def report(backend: str | None, hide_c: bool = False) -> dict[str, str]:
    proc = run_python(REPORT, backend, hide_c)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def cffi_built() -> bool:
    return "cffi" in _backend.available()


@pytest.mark.parametrize("name", ["cffi", "pure"])
def test_forcing_a_backend(name):
    if name == "cffi" and not cffi_built():
        unavailable("the cffi backend does not import")
    assert report(name) == {"BACKEND": name, "reader": name, "writer": name, "value": "v"}


#: The backend is chosen at first use, not at import (so that the pycdb
#: command can report a bad setting in one line).
FIRST_USE = "import pycdb; pycdb.BACKEND"


@pytest.mark.parametrize("bogus", ["bogus", "CFFI", "c", " pure"])
def test_a_bogus_backend_is_an_importerror(bogus):
    assert run_python("import pycdb", bogus).returncode == 0
    proc = run_python(FIRST_USE, bogus)
    assert proc.returncode == 1
    assert "ImportError: PYCDB_BACKEND must be one of cffi, pure, not " + repr(bogus) in proc.stderr


def test_forcing_cffi_when_it_is_missing_says_why():
    proc = run_python(FIRST_USE, "cffi", hide_c=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: pycdb's C extension is not available (")
    assert "hidden by the test" in last  # the underlying reason
    assert "PYCDB_BACKEND=pure" in last  # and what to do


def test_missing_cffi_is_never_silently_replaced_when_forced():
    code = "import pycdb; print(pycdb.BACKEND)"
    proc = run_python(code, "cffi", hide_c=True)
    assert proc.returncode != 0 and proc.stdout == ""


def test_unforced_default_falls_back_to_pure_when_c_is_missing():
    """Outside CI an install without a compiler still works, on pure: that
    is the unforced default, and BACKEND says so."""
    assert report(None, hide_c=True)["BACKEND"] == "pure"
    assert report("pure", hide_c=True)["BACKEND"] == "pure"


def test_the_fallback_is_loud():
    """pip hides what setup.py says about a failed compile, so the first
    use says it: a RuntimeWarning naming the reason, unless pure was asked
    for.  (The pycdb command prints it as one 'pycdb: warning:' line.)"""
    proc = run_python(FIRST_USE, None, hide_c=True)
    assert proc.returncode == 0
    assert "RuntimeWarning: pycdb: the C core is not available" in proc.stderr
    assert "hidden by the test" in proc.stderr and "PYCDB_BACKEND=pure" in proc.stderr
    assert run_python(FIRST_USE, "pure", hide_c=True).stderr == ""
    if "cffi" in _backend.available():
        assert run_python(FIRST_USE, None).stderr == ""


def test_default_backend():
    """The backend a plain `import pycdb` picks, in the environment the
    suite runs in.  In CI (STRICT) it must be cffi: a pure fallback there
    would mean the C core silently failed to build or load, or that
    PYCDB_BACKEND overrides it."""
    env_choice = os.environ.get("PYCDB_BACKEND")
    proc = run_python("import pycdb; print(pycdb.BACKEND)", env_choice)
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
    tests = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {tests!r}); import helpers; print(helpers.STRICT)"
    for env, want in (
        ({"CI": "true"}, "True"),
        ({"PYCDB_REQUIRE_CFFI": "1"}, "True"),
        ({}, "False"),
    ):
        base = {k: v for k, v in os.environ.items() if k not in ("CI", "PYCDB_REQUIRE_CFFI")}
        proc = subprocess.run(
            python("-c", code),
            env={**base, **env},
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
    """A ``python -c`` started by a test, even from the repository root
    where the unbuilt source tree lies, imports the same pycdb as the tests
    do, on every Python version."""
    import pycdb

    out = subprocess.run(
        python("-c", "import pycdb; print(pycdb.__file__)"),
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.strip() == pycdb.__file__


# ---- the interface: both backends offer exactly the same names -----------


def _public(obj: object) -> dict[str, object]:
    return {n: getattr(obj, n) for n in dir(obj) if not n.startswith("_")}


def _signature(fn: object) -> list[str]:
    import inspect

    return [p.name for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]


def test_backends_offer_the_same_names_and_signatures(tmp_path: Path) -> None:
    """The module-level names, and every public method of a handle and a
    maker (instances: some methods are closures made per instance), are
    the same in both backends, with the same parameters."""
    from pycdb import _interface

    if STRICT:
        assert "cffi" in _backend.available()
    mods = {name: _backend.load(name) for name in _backend.available()}
    if len(mods) < 2:
        pytest.skip("only one backend is built here")
    from pycdb._format import Layout, parse_header

    path = tmp_path / "t.cdb"
    import pycdb

    with pycdb.Writer(path) as w:
        w.add(b"k", b"v")
    data = path.read_bytes()
    shapes = {}
    for name, mod in mods.items():
        header, eod = parse_header(data, "t")
        handle = mod.Handle(Layout(data, header, eod, "t"))
        fd = os.open(tmp_path / f"{name}.tmp", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            maker = mod.Maker(fd, 0xFFFFFFFF)
            shapes[name] = {
                "module": sorted(mod.__all__),  # type: ignore[attr-defined]
                "handle": {n: _signature(v) for n, v in _public(handle).items() if callable(v)},
                "maker": {
                    n: (_signature(v) if callable(v) else "attribute")
                    for n, v in _public(maker).items()
                },
            }
            maker.close()
        finally:
            os.close(fd)
    assert shapes["cffi"] == shapes["pure"]
    # ... and they are what the interface declares, no more.
    declared = {
        "handle": _public(_interface.HandleAPI),
        "maker": _public(_interface.MakerAPI),
    }
    for part in ("handle", "maker"):
        assert set(shapes["pure"][part]) == set(declared[part]), part
    backend_names = set(_public(_interface.Backend))
    assert set(shapes["pure"]["module"]) == backend_names
    for mod in mods.values():  # nothing public beyond them defined there
        defined = {
            n for n, v in _public(mod).items() if getattr(v, "__module__", 0) == mod.__name__
        }
        assert defined <= backend_names


@pytest.mark.parametrize("name", _backend.NAMES)
def test_subprocesses_run_the_active_backend(name: str) -> None:
    """child_env() hands the backend active in the test (whatever the
    default is) to the processes it starts."""
    if name not in _backend.available():
        unavailable(f"the {name} backend is not loaded")
    with _backend.use(name):
        out = subprocess.run(
            python("-c", "import pycdb; print(pycdb.BACKEND)"),
            env=child_env(),
            capture_output=True,
            text=True,
            check=True,
        )
    assert out.stdout.strip() == name


def test_every_subprocess_goes_through_the_helpers() -> None:
    """No test module starts this interpreter or finds the pycdb command
    on its own: that is how a subprocess came to import the source tree
    on 3.9 and 3.10, or to test only the default backend."""
    needles = ("sys." + "executable", 'which("pycdb")', "which('pycdb')")
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(Path(__file__).parent.glob("*.py"))
        if path.name not in ("helpers.py", Path(__file__).name)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(needle in line for needle in needles)
    ]
    assert not found, "use helpers.python(), script() and child_env():\n" + "\n".join(found)
