"""The ledger's refusals: per workflow, how many calls each of its guards (guards.py)
refused in production traffic (live runs and MCP sessions), from the runs' `tool.result`
events, which name the guard of a refused call."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from tandem.store import RunRecord

from .figures import COUNTED_MODES


def refusals(runs: Iterable[RunRecord]) -> dict[str, dict[str, int]]:
    """{workflow: {guard: refused calls}}, workflows and guards sorted; none: {}."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for run in runs:
        if run.mode not in COUNTED_MODES:
            continue
        for event in run.events:
            if event.kind == "tool.result" and event.data.get("refused"):
                counts[run.workflow][str(event.data["refused"])] += 1
    return {w: dict(sorted(counts[w].items())) for w in sorted(counts)}


def refusal_lines(report: dict[str, dict[str, int]]) -> list[str]:
    """`tandem stats`'s section: one line per guard that refused something."""
    if not report:
        return []
    lines = ["calls refused by guards (guards.py):"]
    for workflow, guards in report.items():
        lines += [f"  {workflow:<20} {guard:<32} {n}" for guard, n in guards.items()]
    return lines
