"""Shared by the benchmark modules: record results, print ratios.

A benchmark calls ``report(group, name, value)`` (or ``measured`` with a
finished pytest-benchmark fixture); at the end of the session conftest
prints, per group, every implementation's figure and its ratio to the
group's reference peer (``REFERENCE``), all measured in the same run.
"""

from __future__ import annotations

import os
from typing import Any

_RESULTS: dict[str, dict[str, float]] = {}
_NOTES: dict[str, dict[str, str]] = {}

#: The peer each group's ratios are taken against.
REFERENCE = {"default": "cdbx"}


def report(group: str, name: str, value: float, note: str = "") -> None:
    _RESULTS.setdefault(group, {})[name] = value
    if note:
        _NOTES.setdefault(group, {})[name] = note


def measured(benchmark: Any, group: str, name: str, per: int = 1) -> None:
    """Record a finished pytest-benchmark run: its fastest round / ``per``.
    On a shared, noisy machine the minimum is the figure least disturbed
    by other work (as timeit advises); the full statistics are in
    pytest-benchmark's own table and JSON."""
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None:
        report(group, name, stats.min / per)


def _fmt(value: float, unit: str) -> str:
    if unit == "MB":
        return f"{value:10.1f} MB"
    if value < 1e-3:
        return f"{value * 1e9:10.0f} ns"
    return f"{value:10.3f} s "


def summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("pycdb: ratios measured in this run")
    tr.write_line(
        f"machine: {os.cpu_count()} cpus; fastest round of each; lower is better; "
        "ratio = figure / reference"
    )
    for group in sorted(_RESULTS):
        rows = _RESULTS[group]
        unit = "MB" if group.endswith("rss") else "s"
        ref_name = next(
            (r for r in REFERENCE.get(group, REFERENCE["default"]).split(",") if r in rows), None
        )
        tr.write_line(f"\n{group}  (reference: {ref_name or '-'})")
        for name, value in sorted(rows.items(), key=lambda kv: kv[1]):
            ratio = f"{value / rows[ref_name]:6.2f}x" if ref_name else ""
            note = _NOTES.get(group, {}).get(name, "")
            tr.write_line(f"  {name:<28}{_fmt(value, unit)}  {ratio}  {note}")
