"""Benchmark session hooks: ratios measured in one run.

Run: ``pytest benchmarks --benchmark-enable`` (add ``--benchmark-json
out.json`` to keep the raw numbers).  Timings are never asserted; the
ratio table at the end is the result.
"""

from __future__ import annotations

from typing import Any

from _bench import summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    summary(terminalreporter)
