"""The compare page's data: two runs' tool plans aligned call by call, as `tandem replay`
and shadows diff them (tandem_sdk.plan.diff_plans), each side with its call's result, the
arguments that differ named; and the two runs' outputs, tokens, cost and duration."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tandem_sdk.plan import PlannedCall, diff_plans

from tandem.ledger.figures import models_from_events, run_cost
from tandem.ledger.prices import PriceTable
from tandem.replay.recording import attempted_plan
from tandem.store import RunRecord

from .timeline import Call, timeline


@dataclass
class Row:
    kind: str  # same | added | missing | changed | moved | flagged | repeated
    left: Call | None
    right: Call | None
    differing: list[str] = field(default_factory=list)  # argument names that differ


@dataclass
class Figures:
    run: RunRecord
    output: str
    tokens: int
    cost: float | None  # None: a model without a price
    duration_s: float | None


@dataclass
class Comparison:
    left: Figures
    right: Figures
    rows: list[Row]
    summary: str
    agree: bool


def compare(left: RunRecord, right: RunRecord, prices: PriceTable) -> Comparison:
    plan = diff_plans(attempted_plan(left), attempted_plan(right))
    lefts, rights = _own_calls(left, prices), _own_calls(right, prices)
    rows = []
    for entry in plan.entries:
        row = Row(entry.kind, _take(lefts, entry.recorded), _take(rights, entry.replayed))
        if entry.recorded is not None and entry.replayed is not None:
            row.differing = _differing(entry.recorded, entry.replayed)
        rows.append(row)
    return Comparison(
        _figures(left, prices), _figures(right, prices), rows, plan.summary(), plan.agrees()
    )


def _own_calls(record: RunRecord, prices: PriceTable) -> list[Call]:
    return [e for e in timeline(record, prices) if isinstance(e, Call) and e.number is not None]


def _take(calls: list[Call], planned: PlannedCall | None) -> Call | None:
    """The first call not yet shown that made `planned` (the plan's calls are the run's
    own calls, in order)."""
    if planned is None:
        return None
    for n, call in enumerate(calls):
        if call.tool == planned.tool and json.loads(call.arguments) == planned.arguments:
            return calls.pop(n)
    return None


def _differing(a: PlannedCall, b: PlannedCall) -> list[str]:
    names = sorted(set(a.arguments) | set(b.arguments))
    return [n for n in names if a.arguments.get(n, ...) != b.arguments.get(n, ...)]


def _figures(record: RunRecord, prices: PriceTable) -> Figures:
    usage = record.usage
    model = models_from_events([record]).get(record.workflow_version)
    cost, unpriced = run_cost(record, model, prices)
    duration = (
        record.finished_at - record.started_at if record.started_at and record.finished_at else None
    )
    tokens = sum(
        int(usage.get(k, 0))
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    )
    return Figures(
        record,
        json.dumps(record.output, indent=2),
        tokens,
        None if unpriced else cost,
        duration,
    )
