"""Runs made or changed by any daemon sharing the store, found by looking again: a
console's live runs page hears of its own daemon's changes at once (RunStore.watchers)
and of the other daemons' at its next look."""

from __future__ import annotations

from dataclasses import dataclass

from tandem.store import RunStore

IN_FLIGHT = ("queued", "running", "waiting")
# The newest runs in flight a look compares: the live page shows the newest runs.
LOOK_AT_MOST = 1000


@dataclass(frozen=True)
class Look:
    newest: float  # the latest created_at in the store
    in_flight: frozenset[tuple[str, str]]  # (run id, status) of the newest runs in flight


def look(store: RunStore) -> Look:
    """Two indexed reads: the newest run's time (runs_by_created) and the runs in flight
    (runs_by_status)."""
    newest = store._run("SELECT MAX(created_at) FROM runs").fetchone()
    rows = store._run(
        "SELECT id, status FROM runs WHERE status IN (?, ?, ?)"
        " ORDER BY created_at DESC, id DESC LIMIT ?",
        (*IN_FLIGHT, LOOK_AT_MOST),
    ).fetchall()
    made = float(newest[0]) if newest is not None and newest[0] is not None else 0.0
    return Look(made, frozenset((str(run_id), str(status)) for run_id, status in rows))


def changed(before: Look, after: Look) -> str | None:
    """A run made or changed between two looks (any one: the page fetches its rows again);
    "" for runs made and ended between them, seen only as the newest time moving; None
    when nothing changed."""
    moved = before.in_flight ^ after.in_flight
    if moved:
        return min(run_id for run_id, _ in moved)
    return "" if after.newest > before.newest else None
