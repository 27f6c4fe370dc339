"""A run taken over while its daemon still executes it: the late copy's end and trace stop
at the takeover (no `run.finished succeeded` in the trace of an interrupted run)."""

from __future__ import annotations

import time

from conftest import Project, eventually
from tandem.client import ControlClient
from tandem.embedded import EmbeddedHost
from tandem.store import RunStore

POKE = """
def handler(trigger, tools, virtual_files, subagent):
    return tools.gate.poke()
"""
GATE = '''
from tandem_sdk import tool

@tool()
def poke() -> str:
    """A call with side effects: held for a person's approval."""
    return "poked"
'''


def test_a_late_copy_writes_neither_its_end_nor_run_finished_after_a_takeover(
    project: Project,
) -> None:
    # No heartbeat during the test: the late copy learns of the takeover only at its end.
    (project.root / "tandem.yaml").write_text(
        "builtin_plugins: false\ncluster: {heartbeat_s: 300, lease_s: 600}\n"
    )
    project.plugin("gate", GATE)
    project.workflow("held", script=POKE, tools=["gate.poke"], approvals={"script": ["gate.poke"]})
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
