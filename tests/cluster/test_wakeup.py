"""On PostgreSQL a run left in the shared queue wakes the other daemons (LISTEN/NOTIFY):
one with room claims it at once, long before its next poll."""

from __future__ import annotations

from typing import Any

from conftest import Daemon, Project, eventually
from tandem.store import RunStore
from tandem_sdk._pb import control_pb2

# Polls (and heartbeats) far apart: within the test only a notification wakes a daemon.
SETTINGS = """\
store: {store}
cluster: {{heartbeat_s: 60, lease_s: 180, poll_s: 60}}
runs: {{max_in_flight: 1}}
"""
NAP = """
import time

def handler(trigger, tools, virtual_files, subagent):
    time.sleep(trigger["sleep"])
    return trigger
"""


def test_a_run_left_queued_is_claimed_by_another_daemon_when_notified(
    tmp_path: Any, pg_url: str
) -> None:
    project = Project(tmp_path / "project")
    (project.root / "tandem.yaml").write_text(SETTINGS.format(store=pg_url))
    project.workflow("nap", script=NAP)
    with (
        Daemon(project, state_dir=tmp_path / "state-a") as a,
        Daemon(project, state_dir=tmp_path / "state-b") as b,
    ):
        busy = a.client.trigger("nap", {"sleep": 120}, None)
        assert eventually(lambda: a.client.run(busy).status == "running")
        # `a` has no room: the run waits in the shared queue, and `b` is told.
        waiting = a.client.trigger("nap", {"sleep": 0}, None)
        assert eventually(lambda: a.client.run(waiting).status == "succeeded")
        assert a.client.run(busy).status == "running"
        store = RunStore(pg_url)
        try:
            owner = store._run("SELECT owner FROM runs WHERE id=?", (waiting,)).fetchone()
        finally:
            store.close()
        b_id = b.client.stub.Health(control_pb2.HealthRequest()).daemon_id
        assert owner == (b_id,)
        assert a.client.cancel(busy)
