"""Claims, leases and the daemons registry against a real store, on each database: daemons
are played by their ids over one store (several RunStores on one PostgreSQL database)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tandem.cluster import claims, members
from tandem.cluster.node import Node
from tandem.config import ClusterSettings
from tandem.store import RunStore


def add_run(
    store: RunStore,
    run_id: str,
    workflow: str = "wf",
    *,
    status: str = "queued",
    owner: str | None = None,
    mode: str = "live",
    created_at: float = 0.0,
) -> None:
    store._run(
        "INSERT INTO runs (id, workflow, workflow_version, coordinator, trigger_json, status,"
        " created_at, mode, host_pid, owner, attempt, lease_until) VALUES"
        " (?, ?, 'v1', 'script', 'null', ?, ?, ?, 1, ?, ?, ?)",
        (
            run_id,
            workflow,
            status,
            created_at or time.time(),
            mode,
            owner,
            1 if status == "running" else 0,
            time.time() + 60 if status == "running" else None,
        ),
    )


def status_of(store: RunStore, run_id: str) -> str:
    return str(store._run("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()[0])


def test_claimers_of_two_full_limited_workflows_never_deadlock(pg_url: str) -> None:
    """Each claim looks at the oldest run of either workflow, both at their limit: claimers
    meeting each other's workflows in opposite orders must pass, not wait on each other."""
    setup = RunStore(pg_url)
    now = time.time()
    for workflow in ("a", "b"):
        add_run(setup, f"{workflow}-running", workflow, status="running", owner="elsewhere")
    for n in range(40):
        add_run(setup, f"q{n:03}", "ab"[n % 2], created_at=now + n)
    setup.close()
    errors: list[BaseException] = []

    def claimer(me: str) -> None:
        store = RunStore(pg_url)
        try:
            for _ in range(30):
                claim = claims.claim_next(
                    store, me, {"a": "v1", "b": "v1"}, {"a": 1, "b": 1}, now, now + 60
                )
                assert claim is None  # both full: nothing to take
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=claimer, args=(f"d{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


def test_only_the_runs_a_daemon_executes_have_their_leases_renewed(store: RunStore) -> None:
    """A run claimed but never started (its daemon lost it between the claim and the start)
    is not renewed with the rest: its lease runs out, and the reap puts it back in the
    shared queue."""
    add_run(store, "started", status="running", owner="me")
    add_run(store, "lost", status="running", owner="me")
    now = time.time()
    store._run("UPDATE runs SET lease_until=?", (now + 1,))
    mine = claims.renew(store, "me", now + 60, ["started"])
    assert mine == {"started": 1, "lost": 1}
    reaped = members.reap(store, "other", 10.0, now + 2)
    assert (reaped.interrupted, reaped.requeued) == ([], ["lost"])
    assert (status_of(store, "started"), status_of(store, "lost")) == ("running", "queued")


def test_a_kept_end_is_written_only_while_the_run_is_still_the_daemons_attempt(
    store: RunStore,
) -> None:
    """An end kept through an outage, written once the store answers, after another daemon
    took the run over: the takeover's `interrupted` stands."""
    add_run(store, "taken", status="running", owner="late")
    store._run(
        "INSERT INTO events (run_id, seq, ts, kind, data_json)"
        " VALUES ('taken', 0, ?, 'run.started', '{}')",
        (time.time(),),
    )
    store._run("UPDATE runs SET lease_until=?", (time.time() - 1,))
    assert members.reap(store, "other", 10.0, time.time()).interrupted == ["taken"]
    usage = {"input_tokens": 0}
    store.finish("taken", "succeeded", "late", None, usage, time.time(), fence=("late", 1))
    assert status_of(store, "taken") == "interrupted"
    add_run(store, "kept", status="running", owner="late")
    store.finish("kept", "succeeded", "done", None, usage, time.time(), fence=("late", 1))
    assert status_of(store, "kept") == "succeeded"


def test_a_daemon_whose_machine_clock_is_behind_is_not_taken_for_dead(
    pg_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL heartbeats and leases are written and judged on the database's clock:
    a machine an hour behind beats, and the others see it live, its run's lease good."""
    settings = ClusterSettings(heartbeat_s=1.0, lease_s=10.0)
    stores = [RunStore(pg_url), RunStore(pg_url)]
    try:
        behind = Node(stores[0], settings, tmp_path, daemon=True, clock=lambda: time.time() - 3600)
        right = Node(stores[1], settings, tmp_path, daemon=True)
        behind.join()
        add_run(stores[0], "its-run", status="running", owner=behind.id)
        mine = claims.renew(stores[0], behind.id, behind.lease_until(behind.now()), ["its-run"])
        assert mine == {"its-run": 1}
        reaped = right.join()
        assert (reaped.dead, reaped.interrupted) == ([], [])
        assert status_of(stores[1], "its-run") == "running"
    finally:
        for store in stores:
            store.close()


def test_queued_runs_no_daemon_may_claim_fail_instead_of_waiting_forever(
    store: RunStore,
) -> None:
    """A dead member's queued MCP session and an ownerless queued replay are nobody's to
    run: they fail, saying so, instead of filling runs.max_queued; live runs wait."""
    long_ago = time.time() - 600
    store._run(
        "INSERT INTO daemons (id, host, pid, state_dir, role, started_at, heartbeat_at,"
        " in_flight) VALUES ('gone', 'elsewhere', 1, '/state', 'daemon', ?, ?, 0)",
        (long_ago, long_ago),
    )
    add_run(store, "session", owner="gone", mode="mcp")
    add_run(store, "replay", mode="replay", created_at=long_ago)
    add_run(store, "live", created_at=long_ago)
    reaped = members.reap(store, "me", 10.0, time.time())
    assert reaped.requeued == []
    assert status_of(store, "live") == "queued"
    for run_id in ("session", "replay"):
        assert status_of(store, run_id) == "failed"
    assert claims.queued(store, 10) == 1
