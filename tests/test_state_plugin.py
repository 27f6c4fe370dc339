"""The built-in `state` plugin: durable per-workflow key-value state."""

from __future__ import annotations

from conftest import Project

SCRIPT = """
from tandem_sdk import ToolError

def handler(trigger, tools, virtual_files, subagent):
    s = tools.state
    first = s.add_once(key="msg:1")
    again = s.add_once(key="msg:1")
    s.set(key="config", value={"channels": ["eng"], "n": 3})
    try:
        s.increment(key="config")
        wrong = None
    except ToolError as error:
        wrong = error.type
    return {
        "first": first, "again": again,
        "config": s.get(key="config"),
        "missing": s.get(key="nope", default=42),
        "count": s.increment(key="runs"),
        "keys": s.keys(prefix="msg:"),
        "deleted": s.delete(key="msg:1"),
        "deleted_again": s.delete(key="msg:1"),
        "wrong": wrong,
    }
"""


def test_state_is_durable_and_per_workflow(project: Project, start_daemon) -> None:
    project.workflow("one", tools=["state.*"], script=SCRIPT)
    project.workflow("two", tools=["state.*"], script=SCRIPT)
    daemon = start_daemon(project)
    first = daemon.run("one").output
    assert first == {
        "first": True,
        "again": False,
        "config": {"channels": ["eng"], "n": 3},
        "missing": 42,
        "count": 1,
        "keys": ["msg:1"],
        "deleted": True,
        "deleted_again": False,
        "wrong": "TypeError",
    }
    assert daemon.run("one").output["count"] == 2
    assert daemon.run("two").output["count"] == 1, "each workflow has its own namespace"

    daemon.terminate()
    restarted = start_daemon(project)
    assert restarted.run("one").output["count"] == 3, "state survives a restart"


COUNTS = """
def handler(trigger, tools, virtual_files, subagent):
    s = tools.state
    count = s.increment(key="runs")
    return {
        "next": count + 1,
        "set": s.set(key="last", value=count),
        "deleted": s.delete(key="last"),
        "first": s.add_once(key="seen"),
    }
"""


def test_a_dry_run_answers_each_tool_as_its_real_answer_reads(
    project: Project, start_daemon
) -> None:
    project.workflow("counts", tools=["state.*"], script=COUNTS)
    daemon = start_daemon(project)
    run_id = daemon.client.trigger("counts", None, None, dry_run=True)
    for _ in daemon.client.watch(run_id):
        pass
    record = daemon.client.run(run_id)
    assert record.status == "succeeded", record.error
    assert record.output == {"next": 2, "set": None, "deleted": False, "first": True}
    planned = [e.data for e in record.events if e.kind == "tool.call"]
    assert {c["source"] for c in planned} == {"planned"}
    assert daemon.run("counts").output["next"] == 2, "the dry run counted nothing"


SHARED = """
def handler(trigger, tools, virtual_files, subagent):
    s = tools.state
    return {"count": s.increment(key="runs"), "first": s.add_once(key="delivery:1")}
"""


def test_daemons_sharing_a_postgresql_store_share_the_state(
    tmp_path, start_daemon, pg_url: str
) -> None:
    """The state plugin keeps its data in the run store's PostgreSQL: a counter increments
    across two daemons (each with its own state folder) and a key is added once."""
    answers = []
    for name in ("one", "two"):
        project = Project(tmp_path / name)
        (project.root / "tandem.yaml").write_text(f"store: {pg_url}\n")
        project.workflow("shared", tools=["state.*"], script=SHARED)
        daemon = start_daemon(project)
        record = daemon.run("shared")
        assert record.status == "succeeded", record.error
        answers.append(record.output)
        assert not (project.config.state_dir / "plugins" / "state" / "state.sqlite3").exists()
    assert answers == [{"count": 1, "first": True}, {"count": 2, "first": False}]
