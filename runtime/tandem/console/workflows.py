"""The workflows page's data: each workflow's state as `tandem workflows` tells it, its
triggers with the next scheduled time, and from the ledger its current version's shadow
agreement and its latest migration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tandem.cli.stats import headline
from tandem.cron import next_slot
from tandem.ledger.prices import PriceTable
from tandem.ledger.report import ledger_report
from tandem.runs import RunManager

from .ledger import LIMIT


@dataclass
class WorkflowView:
    name: str
    state: str  # ok | stale (an older version serves; the newest does not load) | error
    coordinator: str = ""
    version: str = ""
    description: str = ""
    error: str = ""
    triggers: list[str] = field(default_factory=list)
    shadow: str = ""  # "3/4 agreed (75%)" for the current version's shadows
    migration: str = ""  # the latest migration's before and after, per run


def workflows(runs: RunManager, prices: PriceTable) -> list[WorkflowView]:
    report = ledger_report(runs.store, prices, "", 0.0, 0.0, LIMIT)
    views = []
    for state in runs.registry.states():
        workflow = state.current
        view = WorkflowView(
            state.name,
            "error" if workflow is None else ("stale" if state.error else "ok"),
            error=str(state.error or ""),
        )
        if workflow is not None:
            spec = workflow.spec
            view.coordinator, view.version = spec.coordinator, workflow.version
            view.description = spec.description
            view.triggers = [_trigger(t.describe(), t.schedule) for t in spec.triggers]
            view.shadow = _shadow(report["groups"], state.name, workflow.version)
        migrations = [m for m in report["migrations"] if m["workflow"] == state.name]
        view.migration = headline(migrations[-1]) if migrations else ""
        views.append(view)
    return views


def _trigger(described: str, schedule: str | None) -> str:
    if schedule is None:
        return described
    try:
        slot = next_slot(schedule, datetime.now(UTC)).astimezone()
    except Exception:  # the scheduler logs a schedule it cannot read
        return f"{described} (no next time)"
    return f"{described} (next {slot:%Y-%m-%d %H:%M:%S})"


def _shadow(groups: list[dict[str, Any]], name: str, version: str) -> str:
    runs = agreed = 0
    for group in groups:
        if group["workflow"] == name and group["version"] == version:
            runs += group["shadows"]["runs"]
            agreed += group["shadows"]["agreed"]
    return f"{agreed}/{runs} agreed ({agreed / runs:.0%})" if runs else ""
