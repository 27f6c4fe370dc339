"""Schedule slots fired once across the daemons sharing a store: the daemon whose insert
makes the slot's row fires it; the others find the row there and skip the slot."""

from __future__ import annotations

from tandem.store import RunStore


def take(store: RunStore, workflow: str, schedule: str, slot: str, daemon: str, now: float) -> bool:
    """`now`: the store's time (Node.now), so slots are swept on one clock."""
    cursor = store._run(
        "INSERT INTO schedule_slots (workflow, schedule, slot, daemon, fired_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (workflow, schedule, slot) DO NOTHING",
        (workflow, schedule, slot, daemon, now),
    )
    return cursor.rowcount == 1
