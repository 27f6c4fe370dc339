"""The ledger as the daemon serves it (Control `GetLedger`): the runs in a range read from
the run store, each version's model and configured coordinator from its kept content, the
figures computed, and one JSON report. Only live runs and MCP sessions are read with their
events; the rest of the store stays where it is. Runs excluded with `tandem runs exclude` are left
out."""

from __future__ import annotations

from typing import Any

from tandem.store import PLAN_KINDS, RunQuery, RunRecord, RunStore

from .escalations import escalations
from .figures import COUNTED_MODES, Ledger, compute, models_from_events, models_from_versions
from .prices import PriceTable
from .refusals import refusals

COUNTED = "live runs and MCP sessions; shadows only for their agreement"


def read_runs(
    store: RunStore, workflow: str, since: float, until: float, limit: int
) -> tuple[list[RunRecord], bool]:
    """The newest `limit` runs in the range (live ones with their events), and whether
    `limit` cut the list short."""
    # Excluded runs (and the shadows and replays of them) are not counted.
    query = RunQuery(
        workflow=workflow,
        since=since,
        until=until or float("inf"),
        limit=limit + 1,
        without_excluded=True,
    )
    listed = store.list(query)
    truncated = len(listed) > limit
    runs = []
    for run in listed[:limit]:
        full = store.get(run.id, kinds=PLAN_KINDS) if run.mode in COUNTED_MODES else run
        runs.append(full or run)
    return runs, truncated


def ledger_report(
    store: RunStore, prices: PriceTable, workflow: str, since: float, until: float, limit: int
) -> dict[str, Any]:
    runs, truncated = read_runs(store, workflow, since, until, limit)
    return report_of_runs(store, prices, runs, since, until, truncated)


def version_facts(store: RunStore, runs: list[RunRecord]) -> tuple[dict[str, str], dict[str, str]]:
    """Each version's model, and the coordinator its workflow.yaml configured, from the
    runs' events and the store's kept versions."""
    contents = {v: c for v in {r.workflow_version for r in runs} if (c := store.version_content(v))}
    models = {**models_from_events(runs), **models_from_versions(contents)}
    configured = {
        version: str(spec["coordinator"])
        for version, content in contents.items()
        if (spec := content.get("spec") or {}).get("coordinator")
    }
    return models, configured


def report_of_runs(
    store: RunStore,
    prices: PriceTable,
    runs: list[RunRecord],
    since: float,
    until: float,
    truncated: bool,
) -> dict[str, Any]:
    """The report of runs `read_runs` read."""
    models, configured = version_facts(store, runs)
    ledger = compute(runs, models, prices, configured=configured)
    return report(ledger, prices, runs, models, since, until, truncated)


def report(
    ledger: Ledger,
    prices: PriceTable,
    runs: list[RunRecord],
    models: dict[str, str],
    since: float,
    until: float,
    truncated: bool,
) -> dict[str, Any]:
    used = set(models.values()) | {
        str(e.data["model"])
        for run in runs
        if run.mode in COUNTED_MODES
        for e in run.events
        if e.kind == "model.request" and e.data.get("model")
    }
    return {
        "since": since or None,
        "until": until or None,
        "counted": COUNTED,
        "runs_read": len(runs),
        "truncated": truncated,
        **ledger.to_json(),
        # Per workflow, the calls each guard refused (guards.py): {workflow: {guard: n}}.
        "refusals": refusals(runs),
        "escalations": escalations(runs),
        # The price each model in these runs was charged at; null: no price, cost unknown.
        "prices": {m: (p.to_json() if (p := prices.price(m)) else None) for m in sorted(used)},
    }
