"""Runs owned by one daemon, fenced by attempt: the claim of a queued run from the shared
queue, the start of a run a daemon made for itself, and every later write of the run's
status by the daemon executing it, refused once another daemon has taken the run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tandem.store import RunStore

# Unowned queued runs of these modes are any daemon's to claim; a replay or shadow is only
# ever its own daemon's (its recording and candidate are in that daemon's memory).
SHARED_MODES = "('live', 'dry_run')"
CLAIMABLE = f"status='queued' AND owner IS NULL AND mode IN {SHARED_MODES}"
IN_FLIGHT = "status IN ('running', 'waiting') AND mode <> 'mcp'"


@dataclass(frozen=True)
class Claim:
    run_id: str
    attempt: int


def claim_run(
    store: RunStore, run_id: str, me: str, version: str, now: float, lease_until: float
) -> Claim | None:
    """The fast path: this daemon takes the run it just queued, in one statement; None when
    another daemon took it first."""
    row = store._run(
        "UPDATE runs SET owner=?, attempt=attempt+1, lease_until=?, status='running',"  # noqa: S608 - constant conditions
        f" started_at=?, workflow_version=? WHERE id=? AND {CLAIMABLE} RETURNING attempt",
        (me, lease_until, now, version, run_id),
    ).fetchone()
    if row is not None:
        store._changed(run_id)
    return None if row is None else Claim(run_id, int(row[0]))


def claim_next(
    store: RunStore,
    me: str,
    versions: Mapping[str, str],
    limits: Mapping[str, int],
    now: float,
    lease_until: float,
    run_id: str | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Claim | None:
    """Take the oldest queued run (or `run_id`) of a workflow this daemon has loaded
    (`versions`: workflow -> the version it runs), short of any workflow whose
    `limits.max_in_flight` (`limits`) the cluster's runs in flight already reach. One short
    transaction: on PostgreSQL the row is locked past other claimers (SKIP LOCKED) and a
    limited workflow's count is taken under its advisory lock (skipped while another
    claimer holds it)."""
    if not versions:
        return None
    full: set[str] = set()
    with store.transaction() as execute:
        while True:
            names = [name for name in versions if name not in full]
            if not names:
                return None
            sql = oldest_sql(store.dialect, len(names), one=run_id is not None)
            row = execute(sql, (*names, *([run_id] if run_id else []))).fetchone()
            if row is None:
                return None
            candidate, workflow = row
            limit = limits.get(workflow)
            if limit is not None and not _has_room(store, execute, workflow, limit):
                full.add(workflow)
                continue
            # The start as of the claim, after the count: a run another daemon ended
            # before this count read it ended before this run started, by the runs' times.
            started = max(now, clock())
            attempt = execute(
                "UPDATE runs SET owner=?, attempt=attempt+1, lease_until=?, status='running',"
                " started_at=?, workflow_version=? WHERE id=? RETURNING attempt",
                (me, lease_until, started, versions[workflow], candidate),
            ).fetchone()[0]
            break
    store._changed(candidate)
    return Claim(candidate, int(attempt))


def oldest_sql(dialect: str, workflows: int, *, one: bool = False) -> str:
    """The claim's read: the oldest claimable run of `workflows` workflows (or the one run
    named last), read in order from the index of queued runs (runs_claimable), so its cost
    does not grow with the queue; on PostgreSQL its row locked past other claimers."""
    marks = ", ".join("?" * workflows)
    which = " AND id=?" if one else ""
    sql = (
        f"SELECT id, workflow FROM runs WHERE {CLAIMABLE} AND workflow IN ({marks})"  # noqa: S608
        f"{which} ORDER BY created_at, id LIMIT 1"
    )
    return sql + " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else sql


def _has_room(store: RunStore, execute: Any, workflow: str, limit: int) -> bool:
    """Whether the cluster's runs in flight of a limited workflow are below its limit, counted
    under the workflow's advisory lock on PostgreSQL. The lock is only tried: a claimer
    holding it counts that workflow now, and one claim waiting on another's lock while
    holding its own could deadlock; the workflow is skipped until the next claim."""
    if store.dialect == "postgresql":
        locked = execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(CAST(? AS TEXT)))", (f"tandem:{workflow}",)
        ).fetchone()[0]
        if not locked:
            return False
    return _count(execute, workflow) < limit


def _count(execute: Any, workflow: str) -> int:
    """The cluster's runs in flight of `workflow`."""
    row = execute(
        f"SELECT COUNT(*) FROM runs WHERE workflow=? AND {IN_FLIGHT}",  # noqa: S608
        (workflow,),
    ).fetchone()
    return int(row[0])


def any_claimable(store: RunStore, workflows: list[str]) -> bool:
    """A cheap read before a claim's transaction: is anything of these waiting?"""
    if not workflows:
        return False
    marks = ", ".join("?" * len(workflows))
    row = store._run(
        f"SELECT 1 FROM runs WHERE {CLAIMABLE} AND workflow IN ({marks}) LIMIT 1",  # noqa: S608
        workflows,
    ).fetchone()
    return row is not None


# What start_owned answers for a run of a limited workflow the cluster's runs already fill.
FULL = -1


def start_owned(
    store: RunStore,
    run_id: str,
    me: str,
    now: float,
    lease_until: float,
    *,
    workflow: str = "",
    limit: int | None = None,
) -> int | None:
    """Start a run this daemon holds; its attempt, or None when it is no longer this
    daemon's to start (cancelled, or taken over). A run of a workflow with a `limit`
    (limits.max_in_flight) starts only while the cluster's runs in flight of `workflow`
    are fewer, counted as a claim counts them: FULL otherwise (it stays queued)."""
    start = (
        "UPDATE runs SET status='running', started_at=?, attempt=attempt+1, lease_until=?"
        " WHERE id=? AND owner=? AND status='queued' RETURNING attempt"
    )
    params = (now, lease_until, run_id, me)
    if limit is None:
        row = store._run(start, params).fetchone()
    else:
        with store.transaction() as execute:
            if store.dialect == "postgresql":  # the only lock this transaction waits for
                execute(
                    "SELECT pg_advisory_xact_lock(hashtext(CAST(? AS TEXT)))",
                    (f"tandem:{workflow}",),
                )
            if _count(execute, workflow) >= limit:
                return FULL
            row = execute(start, params).fetchone()
    if row is not None:
        store._changed(run_id)
    return None if row is None else int(row[0])


def finish(
    store: RunStore,
    run_id: str,
    me: str,
    attempt: int,
    end: tuple[str, Any, str | None, dict[str, int], float],
) -> bool:
    """Write the run's end, only while it is still this daemon's attempt: False when
    another daemon took it over meanwhile (its end stands)."""
    status, output, error, usage, at = end
    cursor = store._run(
        "UPDATE runs SET status=?, output_json=?, error=?, usage_json=?, finished_at=?,"
        " lease_until=NULL WHERE id=? AND owner=? AND attempt=?",
        (status, json.dumps(output), error, json.dumps(usage), at, run_id, me, attempt),
    )
    store._changed(run_id)
    return cursor.rowcount == 1


def cancel_queued(store: RunStore, run_id: str, now: float) -> bool:
    """Cancel a run still waiting in the shared queue (no daemon holds it yet)."""
    cursor = store._run(
        "UPDATE runs SET status='cancelled', finished_at=?,"  # noqa: S608 - constant conditions
        f" error='the run was cancelled before it started' WHERE id=? AND {CLAIMABLE}",
        (now, run_id),
    )
    store._changed(run_id)
    return cursor.rowcount == 1


def renew(
    store: RunStore, me: str, lease_until: float, executing: Collection[str]
) -> dict[str, int]:
    """Renew the leases of the runs this daemon executes (`executing`) in one statement (a
    run waiting for approval holds none: its daemon's heartbeat keeps it); the runs still
    this daemon's, with their attempts. A run the store says is this daemon's but that it
    does not execute (claimed, then never started) is not renewed: its lease runs out and
    any daemon's reap ends it."""
    if executing:
        marks = ", ".join("?" * len(executing))
        store._run(
            "UPDATE runs SET lease_until=CASE WHEN status='running' THEN ? ELSE NULL END"  # noqa: S608
            f" WHERE owner=? AND status IN ('running', 'waiting') AND id IN ({marks})",
            (lease_until, me, *executing),
        )
    rows = store._run(
        "SELECT id, attempt FROM runs WHERE owner=? AND status IN ('running', 'waiting')", (me,)
    ).fetchall()
    return {run_id: int(attempt) for run_id, attempt in rows}


def owner_of(store: RunStore, run_id: str) -> tuple[str | None, str] | None:
    """(owner, status) of a run; None for no such run."""
    row = store._run("SELECT owner, status FROM runs WHERE id=?", (run_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def queued(store: RunStore, at_most: int) -> int:
    """Runs waiting in the store, every daemon's (runs.max_queued), counted up to `at_most`
    (a count that costs the same however deep the queue)."""
    row = store._run(
        "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status='queued' LIMIT ?) AS waiting",
        (at_most,),
    ).fetchone()
    return int(row[0])


def queue_position(store: RunStore, created_at: float, run_id: str) -> int:
    """A run's place in the shared queue, 1 for the next run to be claimed."""
    row = store._run(
        f"SELECT COUNT(*) FROM runs WHERE {CLAIMABLE} AND (created_at<?"  # noqa: S608
        " OR (created_at=? AND id<=?))",
        (created_at, created_at, run_id),
    ).fetchone()
    return int(row[0])
