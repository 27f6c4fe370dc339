"""Which members a daemon may declare dead, and when: by a lease run out, or at once when
its process is gone from this boot and pid namespace; never at its own start by a heartbeat
that only looks old (the store was away). And which runs are the cluster's to claim."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import held_workflow
from conftest import Project, eventually
from tandem.builtin import PR_WORKFLOW
from tandem.client import ControlClient
from tandem.cluster import claims, members
from tandem.cluster.node import Node
from tandem.config import ClusterSettings
from tandem.embedded import EmbeddedHost
from tandem.store import RunStore

GITHUB = '''
from tandem_sdk import tool

@tool()
def create_pull_request(title: str) -> dict:
    """Stands in for GitHub's: the pull request it would open."""
    return {"number": 1, "title": title}
'''

QUICK = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger
"""
SETTINGS = ClusterSettings(heartbeat_s=1.0, lease_s=10.0)


def dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(process.stdout)


def add_member(
    store: RunStore,
    member_id: str,
    host: str,
    pid: int,
    heartbeat_at: float,
    machine: tuple[str | None, int | None] = (None, None),
) -> None:
    """A member with a running run of its own."""
    store._run(
        "INSERT INTO daemons (id, host, pid, state_dir, role, started_at, heartbeat_at,"
        " in_flight, boot_id, pid_ns) VALUES (?, ?, ?, '/state', 'daemon', ?, ?, 1, ?, ?)",
        (member_id, host, pid, heartbeat_at, heartbeat_at, *machine),
    )
    store._run(
        "INSERT INTO runs (id, workflow, workflow_version, coordinator, trigger_json, status,"
        " created_at, mode, host_pid, owner, attempt, lease_until) VALUES"
        " (?, 'wf', 'v1', 'script', 'null', 'running', ?, 'live', 1, ?, 1, ?)",
        (f"{member_id}-run", heartbeat_at, member_id, heartbeat_at + SETTINGS.lease_s),
    )


def status_of(store: RunStore, run_id: str) -> str:
    return str(store._run("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()[0])


def test_a_daemon_killed_on_this_machine_is_reaped_by_the_next_one_at_its_start(
    store: RunStore, tmp_path: Path
) -> None:
    """Same boot, same pid namespace, pid gone: dead, though it beat a moment ago."""
    boot_id, pid_ns = members.this_machine()
    assert boot_id is not None and pid_ns is not None
    add_member(store, "killed", members.this_host(), dead_pid(), time.time(), (boot_id, pid_ns))
    reaped = Node(store, SETTINGS, tmp_path, daemon=True).join()
    assert [m.id for m in reaped.dead] == ["killed"]
    assert reaped.interrupted == ["killed-run"]
    row = store._run("SELECT boot_id, pid_ns FROM daemons WHERE id<>'killed'").fetchone()
    assert tuple(row) == (boot_id, pid_ns)


def test_a_member_of_the_same_hostname_elsewhere_is_reaped_only_by_its_lease(
    store: RunStore,
) -> None:
    """Another container of this hostname (its own pid namespace: its pid means nothing
    here) that stalled a few heartbeats keeps its runs until its lease runs out."""
    boot_id, pid_ns = members.this_machine()
    now = time.time()
    add_member(store, "twin", members.this_host(), dead_pid(), now, (boot_id, (pid_ns or 0) + 1))
    reaped = members.reap(store, "me", SETTINGS.lease_s, now + 3)
    assert reaped.dead == []
    assert status_of(store, "twin-run") == "running"
    reaped = members.reap(store, "me", SETTINGS.lease_s, now + SETTINGS.lease_s + 1)
    assert [m.id for m in reaped.dead] == ["twin"]
    assert status_of(store, "twin-run") == "interrupted"


def test_a_daemon_starting_after_an_outage_of_the_store_reaps_no_live_member(
    store: RunStore, tmp_path: Path
) -> None:
    """The store was away longer than a lease: every heartbeat in it is old, yet the other
    daemons live (they beat again once they see the store back). A daemon starting now
    leaves them and their runs alone."""
    stale = time.time() - 3 * SETTINGS.lease_s
    add_member(store, "elsewhere", "another-machine", 1, stale)
    reaped = Node(store, SETTINGS, tmp_path, daemon=True).join()
    assert (reaped.dead, reaped.interrupted) == ([], [])
    assert status_of(store, "elsewhere-run") == "running"


def test_a_run_of_a_workflow_folder_waits_on_its_daemon_not_in_the_shared_queue(
    project: Project, start_daemon: Any
) -> None:
    """The daemon is full: a run of a built-in folder (not the registry's workflow, which no
    daemon loads) is its daemon's to start once it has room, never left for a claim that
    would run the registry's version of that name, or never come."""
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\nruns: {max_in_flight: 1}\n")
    held_workflow(project)
    project.plugin("github", GITHUB)
    daemon = start_daemon(project)
    client = daemon.client
    held = client.trigger("held", None, None)
    assert eventually(lambda: client.run(held).status == "waiting")
    folder_run = client.trigger(
        "open_pull_request", {"title": "t"}, None, workflow_path=PR_WORKFLOW
    )
    store = RunStore(project.config.store_location)
    try:
        row = store._run("SELECT status, owner FROM runs WHERE id=?", (folder_run,)).fetchone()
        [member] = members.members(store)
        assert tuple(row) == ("queued", member.id)
    finally:
        store.close()
    client.decide(held, 0, False)
    assert eventually(lambda: client.run(folder_run).status == "succeeded")
    assert client.run(folder_run).output == {"number": 1, "title": "t"}


def test_a_run_put_back_at_its_limit_and_started_again_at_once_is_not_cancelled(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another daemon's run fills the workflow's limit when this host's run would start: the
    run goes back to its queue. That run ends, and an admission pass starts this one again
    before the first task's end is handled: the first task's end leaves the new one be."""
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\n")
    project.workflow("limited", script=QUICK, limits={"max_in_flight": 1})
    real_start_owned = claims.start_owned

    def start_owned(store: RunStore, *args: Any, **kwargs: Any) -> int | None:
        attempt = real_start_owned(store, *args, **kwargs)
        if attempt == claims.FULL:  # the other daemon's run ends, and this host admits
            store._run("UPDATE runs SET status='succeeded' WHERE id='elsewhere'")
            asyncio.get_running_loop().call_soon(embedded.host.runs.admit)
        return attempt

    monkeypatch.setattr(claims, "start_owned", start_owned)
    with EmbeddedHost(project.config) as embedded, ControlClient(embedded.control_socket) as client:
        embedded.host.store._run(
            "INSERT INTO runs (id, workflow, workflow_version, coordinator, trigger_json,"
            " status, created_at, mode, host_pid, owner, attempt, lease_until) VALUES"
            " ('elsewhere', 'limited', 'v1', 'script', 'null', 'running', ?, 'live', 1,"
            " 'other', 1, ?)",
            (time.time(), time.time() + 600),
        )
        run_id = client.trigger("limited", {"n": 1}, None)
        assert eventually(lambda: client.run(run_id).status not in ("queued", "running"))
        record = client.run(run_id)
        assert (record.status, record.output) == ("succeeded", {"n": 1})
