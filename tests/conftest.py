"""Shared fixtures: every test runs once per backend.

When CI is set, or PYCDB_REQUIRE_CFFI=1, a missing cffi backend fails the
run instead of skipping its half.  The installed package is what is
tested: pytest runs with ``--import-mode=importlib`` and only tests/ on
sys.path, so an unbuilt source tree can never stand in for it; the
subprocesses the tests start go through helpers.python()/script() and
helpers.child_env(), which keep that true for them and hand them the
active backend.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest
from helpers import SLOW, unavailable
from hypothesis import HealthCheck, settings

from pycdb import _backend

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("default", max_examples=60, **_COMMON)
settings.register_profile("slow", max_examples=1000, **_COMMON)
settings.load_profile("slow" if SLOW else "default")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A run ended by SIGTERM or SIGHUP (a timeout, a closed terminal) unwinds as
# Ctrl-C does, so the fixtures stop the servers they started (dnsmasq,
# tcpserver) instead of leaving them running on loopback.
for _signum in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, _interrupted)


def _cffi_problem() -> str | None:
    if "cffi" in _backend.available():
        return None
    return _backend._errors.get("cffi", "the cffi backend did not import")


@pytest.fixture(params=list(_backend.NAMES), autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with each backend active in turn."""
    name = request.param
    if name == "cffi":
        problem = _cffi_problem()
        if problem:
            unavailable(f"the cffi backend is not loaded: {problem}")
    with _backend.use(name):
        yield name
