"""Retention: finished runs older than a bound are deleted with their traces, by the
daemon every PRUNE_EVERY_S when `record.keep_days` is set, and by `tandem runs prune`.
Flagged and exported runs are evidence (fixtures, rewrites): kept unless asked."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .blocking import in_thread
from .store import FINAL, RunStore, StoreError

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 3600.0
DAY_S = 86400.0
# Runs deleted per transaction: the daemon's own writes wait for one batch at most.
BATCH = 200


@dataclass(frozen=True)
class Pruned:
    runs: int  # deleted, with their events
    kept: int  # as old, but flagged or exported


def prune(
    location: Path | str,
    before: float,
    *,
    include_flagged: bool = False,
    include_exported: bool = False,
) -> Pruned:
    """Delete the finished runs created before `before` (unix seconds) and their events.
    Blocking: it opens its own store, so it runs in a thread beside the daemon's."""
    store = RunStore(location)
    try:
        final = ",".join("?" * len(FINAL))
        rows = store._run(
            "SELECT id, flag_json IS NOT NULL, exported_at IS NOT NULL FROM runs"  # noqa: S608 - placeholders
            f" WHERE created_at < ? AND status IN ({final})",
            (before, *FINAL),
        ).fetchall()
        doomed = [
            run_id
            for run_id, flagged, exported in rows
            if (include_flagged or not flagged) and (include_exported or not exported)
        ]
        for start in range(0, len(doomed), BATCH):
            batch = doomed[start : start + BATCH]
            marks = ",".join("?" * len(batch))
            with store.transaction() as execute:
                execute(f"DELETE FROM events WHERE run_id IN ({marks})", batch)  # noqa: S608
                execute(f"DELETE FROM runs WHERE id IN ({marks})", batch)  # noqa: S608
    finally:
        store.close()
    return Pruned(len(doomed), len(rows) - len(doomed))


async def prune_forever(
    location: Path | str, keep_days: float, every_s: float = PRUNE_EVERY_S
) -> None:
    """The daemon's retention: prune at once, then every `every_s`, off the event loop."""
    while True:
        try:
            pruned = await in_thread(prune, location, time.time() - keep_days * DAY_S)
            if pruned.runs:
                log.info(
                    "retention: %d run(s) older than %g days deleted (%d flagged or exported kept)",
                    pruned.runs,
                    keep_days,
                    pruned.kept,
                )
        except StoreError as error:
            log.error("retention: %s", error.message)
        await asyncio.sleep(every_s)
