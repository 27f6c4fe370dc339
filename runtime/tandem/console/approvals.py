"""The approvals page's data: every call waiting for a person, and the latest decisions
with who made them and when."""

from __future__ import annotations

from dataclasses import dataclass

from tandem.ledger.prices import PriceTable
from tandem.runs import RunManager
from tandem.store import RunRecord, RunStore

from .timeline import Call, timeline

# Decisions are read from this many of the newest runs.
DECIDED_FROM_RUNS = 500


@dataclass
class Waiting:
    run: RunRecord
    call: Call


@dataclass
class Decided:
    run_id: str
    call: int | None
    tool: str
    approved: bool
    reason: str
    by: str  # console | control (`tandem approve|deny`) | "<user> in Slack (U...)" | ""
    at: float


def waiting_calls(runs: RunManager, prices: PriceTable) -> list[Waiting]:
    """The held calls of the runs this host runs, oldest first."""
    held: list[Waiting] = []
    for run_id, session in list(runs.sessions.items()):
        if not session.approvals:
            continue
        record = runs.store.get(run_id)
        if record is None:
            continue
        for entry in timeline(record, prices):
            if isinstance(entry, Call) and entry.state == "waiting":
                held.append(Waiting(record, entry))
    return sorted(held, key=lambda w: w.call.ts)


def decided_calls(store: RunStore) -> list[Decided]:
    return [
        Decided(
            run_id,
            int(event.data["call"]) if "call" in event.data else None,
            str(event.data.get("tool", "")),
            bool(event.data.get("approved")),
            str(event.data.get("reason", "")),
            str(event.data.get("by", "")),
            event.ts,
        )
        for run_id, event in store.recent_events("approval.decided", DECIDED_FROM_RUNS)
    ]
