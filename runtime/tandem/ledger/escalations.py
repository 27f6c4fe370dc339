"""Escalations: the runs whose script handed over to the model (`raise Escalate(...)`),
counted per workflow and reason: the cases the script still has to learn. Read from the
`run.escalated` events of live runs; pure computation, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from tandem.escalation import EVENT
from tandem.store import RunRecord

from .figures import COUNTED_MODES

SHOWN_RUNS = 5  # the newest runs named per reason


def escalations(runs: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """[{"workflow", "reason", "runs", "last", "run_ids"}]: by workflow, the most frequent
    reason first; `run_ids` the newest SHOWN_RUNS."""
    by_reason: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.mode not in COUNTED_MODES:
            continue
        for event in run.events:
            if event.kind == EVENT:
                by_reason[(run.workflow, str(event.data.get("reason", "")))].append(run)
                break
    rows: list[dict[str, Any]] = []
    for (workflow, reason), listed in by_reason.items():
        newest = sorted(listed, key=lambda r: (r.created_at, r.id), reverse=True)
        rows.append(
            {
                "workflow": workflow,
                "reason": reason,
                "runs": len(listed),
                "last": newest[0].created_at,
                "run_ids": [r.id for r in newest[:SHOWN_RUNS]],
            }
        )
    rows.sort(key=lambda row: (str(row["workflow"]), -int(row["runs"]), str(row["reason"])))
    return rows
