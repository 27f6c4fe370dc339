"""A run taken over while its daemon still executes it: the late copy's end and trace stop
at the takeover (no `run.finished succeeded` in the trace of an interrupted run)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from cluster_fixtures import held_workflow
from conftest import Project, eventually
from tandem.client import ControlClient
from tandem.embedded import EmbeddedHost
from tandem.store import FINAL, RunRecord, RunStore, StoreError

QUICK = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger
"""


def test_a_late_copy_writes_neither_its_end_nor_run_finished_after_a_takeover(
    project: Project,
) -> None:
    # No heartbeat during the test: the late copy learns of the takeover only at its end.
    (project.root / "tandem.yaml").write_text(
        "builtin_plugins: false\ncluster: {heartbeat_s: 300, lease_s: 600}\n"
    )
    held_workflow(project)
    with EmbeddedHost(project.config) as embedded, ControlClient(embedded.control_socket) as client:
        run_id = client.trigger("held", None, None)
        assert eventually(lambda: client.run(run_id).status == "waiting")
        other = RunStore(embedded.host.store.location)
        try:
            other._run(
                "UPDATE runs SET status='interrupted', owner='other', attempt=attempt+1,"
                " finished_at=?, error='taken over' WHERE id=?",
                (time.time(), run_id),
            )
            client.decide(run_id, 0, True)
            assert eventually(lambda: run_id not in embedded.host.runs.sessions)
            record = other.get(run_id)
            assert record is not None
            assert (record.status, record.error) == ("interrupted", "taken over")
            assert "run.finished" not in [event.kind for event in record.events]
        finally:
            other.close()


def test_a_trigger_whose_store_fails_after_the_insert_answers_with_its_held_run(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store goes away right after the run's insert: the trigger still answers with the
    run (a caller told UNAVAILABLE retries, and would start a second one), and the run is
    its host's from the insert, never left in the store for another daemon to claim."""
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\n")
    project.workflow("quick", script=QUICK)
    insert = RunStore.create
    away = threading.Event()

    def create(store: RunStore, record: RunRecord, **kwargs: Any) -> None:
        insert(store, record, **kwargs)
        away.set()

    def run(store: RunStore, sql: str, params: Sequence[Any] = ()) -> Any:
        if away.is_set():
            away.clear()
            raise StoreError(str(store.location), "the server closed the connection")
        return statement(store, sql, params)

    statement = RunStore._run
    monkeypatch.setattr(RunStore, "create", create)
    monkeypatch.setattr(RunStore, "_run", run)
    with EmbeddedHost(project.config) as embedded, ControlClient(embedded.control_socket) as client:
        run_id = client.trigger("quick", {"n": 1}, None, dry_run=True)
        assert eventually(lambda: client.run(run_id).status in FINAL)
        owner = embedded.host.store._run("SELECT owner FROM runs WHERE id=?", (run_id,))
        assert owner.fetchone()[0] == embedded.host.runs.node.id


def test_a_hosts_own_run_of_a_limited_workflow_waits_for_other_daemons_runs(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    """limits.max_in_flight holds across the cluster for a host's own runs (a dry run, an
    embedded host's run) too: another daemon's run in flight fills a limit of one."""
    caplog.set_level(logging.DEBUG, logger="tandem.runs")
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\n")
    project.workflow("single", script=QUICK, limits={"max_in_flight": 1})
    with EmbeddedHost(project.config) as embedded, ControlClient(embedded.control_socket) as client:
        store = embedded.host.store
        store._run(
            "INSERT INTO runs (id, workflow, workflow_version, coordinator, trigger_json,"
            " status, created_at, started_at, mode, host_pid, owner, attempt, lease_until)"
            " VALUES ('elsewhere', 'single', 'v0', 'script', 'null', 'running', ?, ?, 'live',"
            " 1, 'other', 1, ?)",
            (time.time(), time.time(), time.time() + 600),
        )
        run_id = client.trigger("single", {"n": 1}, None, dry_run=True)
        held = f"run {run_id} waits: single is at its limit"
        assert eventually(lambda: held in caplog.text)
        assert client.run(run_id).status == "queued"
        store._run(
            "UPDATE runs SET status='succeeded', finished_at=? WHERE id='elsewhere'", (time.time(),)
        )
        assert eventually(lambda: client.run(run_id).status == "succeeded")
