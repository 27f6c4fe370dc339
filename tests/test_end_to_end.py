"""A script run end to end through a real daemon: trigger, handler, plugin process, trace."""

from __future__ import annotations

from conftest import Project

COUNTER_PLUGIN = '''
from tandem_sdk import RunContext, tool

_calls = {"n": 0}

@tool(side_effects=False)
def echo(text: str, times: int = 1) -> dict:
    """Echo text back.

    Args:
        text: what to echo.
        times: how many copies.
    """
    _calls["n"] += 1
    return {"echo": [text] * times, "call": _calls["n"]}

@tool
def who(ctx: RunContext) -> dict:
    """Say which run and workflow are calling."""
    return {"run": ctx.run_id, "workflow": ctx.workflow}
'''


def test_script_run_end_to_end(project: Project, start_daemon) -> None:
    project.plugin("util", COUNTER_PLUGIN)
    project.workflow(
        "greet",
        tools=["util.*"],
        files={"team.md": "alice\nbob\n"},
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            echoed = tools.util.echo(text=trigger["name"], times=2)
            who = tools.util.who()
            print("hello from the script")
            return {"echoed": echoed, "who": who, "team": virtual_files["team.md"].split()}
        """,
    )
    daemon = start_daemon(project)
    record = daemon.run("greet", {"name": "ada"})

    assert record.status == "succeeded", record.error
    assert record.output["echoed"] == {"echo": ["ada", "ada"], "call": 1}
    assert record.output["who"] == {"run": record.id, "workflow": "greet"}
    assert record.output["team"] == ["alice", "bob"]
    kinds = [event.kind for event in record.events]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    calls = [dict(e.data) for e in record.events if e.kind == "tool.call"]
    versions = {call.pop("plugin_version") for call in calls}
    assert len(versions) == 1 and len(versions.pop()) == 12  # the util plugin's code hash
    assert calls == [
        {
            "tool": "util.echo",
            "executed": True,
            "source": "plugin",
            "arguments": {"text": "ada", "times": 2},
        },
        {"tool": "util.who", "executed": True, "source": "plugin", "arguments": {}},
    ]
    results = [e.data for e in record.events if e.kind == "tool.result"]
    assert [r["ok"] for r in results] == [True, True]
    assert results[0]["result"] == {"echo": ["ada", "ada"], "call": 1}
    assert all(r["duration_ms"] >= 0 for r in results)
    stdout = "".join(e.data["text"] for e in record.events if e.kind == "stdout")
    assert "hello from the script" in stdout
    # The store keeps it: a second client reads the same trace.
    assert daemon.client.run(record.id).events == record.events


def test_a_watcher_sees_every_event_once_and_in_order(project: Project, start_daemon) -> None:
    """Watch streams batch the events a run writes quickly, and split batches too large for
    one message: a watcher from the start and one after the end both see the whole trace."""
    project.plugin("util", COUNTER_PLUGIN)
    project.workflow(
        "chatty",
        tools=["util.*"],
        limits={"max_tool_calls": 1000},
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            for i in range(300):
                tools.util.echo(text=str(i))
            for _ in range(3):  # results near the recording cap: a batch past one message
                tools.util.echo(text="x" * 1000, times=900)
            return "done"
        """,
    )
    daemon = start_daemon(project)
    run_id = daemon.client.trigger("chatty", None, None)
    live = list(daemon.client.watch(run_id))
    record = daemon.client.run(run_id)
    assert record.status == "succeeded", record.error
    assert [e.seq for e in live] == list(range(1, len(record.events) + 1))
    assert live == record.events
    assert list(daemon.client.watch(run_id)) == record.events
