"""The approvals page's data: every call waiting for a person, on any daemon sharing the
store (read from the store: the runs `waiting`, their held calls from their traces), with
the daemon that holds each, and the latest decisions with who made them and when."""

from __future__ import annotations

from dataclasses import dataclass

from tandem.cluster import claims, members
from tandem.ledger.prices import PriceTable
from tandem.runs import RunManager
from tandem.store import RunQuery, RunRecord, RunStore

from .timeline import Call, timeline

# Decisions are read from this many of the newest runs.
DECIDED_FROM_RUNS = 500
# Held calls are read from at most this many waiting runs, the newest.
WAITING_RUNS = 500


@dataclass
class Waiting:
    run: RunRecord
    call: Call
    daemon: str  # the daemon holding the call: "this daemon", or "HOST pid PID"


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
    """The held calls of the runs waiting for a person, whichever daemon holds them,
    oldest first."""
    store = runs.store
    names = {m.id: m.name() for m in members.members(store)}
    names[runs.node.id] = "this daemon"
    held: list[Waiting] = []
    for listed in store.list(RunQuery(status="waiting", limit=WAITING_RUNS)):
        record = store.get(listed.id)
        owner = claims.owner_of(store, listed.id)
        if record is None or owner is None or owner[0] is None:
            continue
        daemon = names.get(owner[0], owner[0])
        for entry in timeline(record, prices):
            if isinstance(entry, Call) and entry.state == "waiting":
                held.append(Waiting(record, entry, daemon))
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
