"""`tandem mcp serve` driven by the official `mcp` client over stdio, against one daemon:
a workflow's tools as one run of mode mcp, the workflows as tools, runs as resources, the
rewrite prompt and the replay tool."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from conftest import Daemon, Project, eventually, tandem
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from tandem.client import ToolHostClient
from tandem.rewrite import validate, write_candidate
from tandem.rewrite.material import load, recorded_runs
from tandem.testing.daemon import TANDEM
from tandem_sdk._pb import control_pb2

COUNTER = """
def handler(trigger, tools, virtual_files, subagent):
    return {"count": tools.state.increment(key="runs")}
"""
GUARDED = """
def handler(trigger, tools, virtual_files, subagent):
    tools.state.set(key="guarded", value=1)
    return {"done": True}
"""
OTHER = """
def handler(trigger, tools, virtual_files, subagent):
    return {"count": tools.state.increment(key="elsewhere")}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    project = Project(tmp_path_factory.mktemp("mcp") / "project")
    project.workflow(
        "counter",
        script=COUNTER,
        tools=["state.*"],
        approvals={"llm": ["destructive"], "timeout_s": 20},
        limits={"timeout_s": 30, "max_tool_calls": 20},
    )
    project.workflow(
        "guarded", script=GUARDED, tools=["state.*"], approvals={"script": ["state.set"]}
    )
    project.workflow("tally", prompt="Count each visit with state.increment.", tools=["state.*"])
    daemon = Daemon(project)
    yield daemon
    daemon.close()


def params(daemon: Daemon, *args: str) -> StdioServerParameters:
    command = [*TANDEM, "--project", str(daemon.root), "mcp", "serve", *args]
    return StdioServerParameters(command=command[0], args=command[1:])


def serve(daemon: Daemon, *args: str, test: Any) -> Any:
    """Run `test(session)` against a fresh `tandem mcp serve`, over stdio; the server ends
    with the session and says nothing on stderr on the way (no traceback)."""

    async def main() -> Any:
        async with (
            stdio_client(params(daemon, *args), errlog=errors) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await test(session)

    with tempfile.TemporaryFile("w+") as errors:
        seen = anyio.run(main)
        errors.seek(0)
        said = errors.read()
    assert "Traceback" not in said and "Error" not in said, said
    return seen


def _session_run(daemon: Daemon) -> str:
    runs = daemon.client.runs("counter", "", 5, mode="mcp")
    return runs[0].id


def test_a_workflows_tools_are_one_run_of_mode_mcp(daemon: Daemon) -> None:
    progress: list[str] = []

    async def test(session: ClientSession) -> dict[str, Any]:
        listed = {t.name: t for t in (await session.list_tools()).tools}
        seen: dict[str, Any] = {"listed": listed}
        seen["increment"] = await session.call_tool("state__increment", {"key": "k"})
        seen["bad"] = await session.call_tool("state__increment", {"key": "k", "by": "x"})
        seen["unknown"] = await session.call_tool("slack__post_message", {"text": "hi"})
        run_id = _session_run(daemon)
        assert daemon.client.run(run_id).status == "running"

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")

        async def approve_when_held() -> None:
            while not any("held" in m for m in progress):
                await anyio.sleep(0.05)
            await anyio.to_thread.run_sync(daemon.client.decide, run_id, 0, True, "")

        async with anyio.create_task_group() as group:
            group.start_soon(approve_when_held)
            seen["set"] = await session.call_tool(
                "state__set", {"key": "doc", "value": {"a": 1}}, progress_callback=on_progress
            )
        seen["get"] = await session.call_tool("state__get", {"key": "doc"})
        return seen

    seen = serve(daemon, "--workflow", "counter", test=test)
    listed = seen["listed"]
    assert {"state__get", "state__set", "state__increment", "replay_script"} <= set(listed)
    assert listed["state__set"].annotations.model_dump(exclude_none=True, by_alias=True) == {
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    assert listed["state__get"].input_schema["required"] == ["key"]
    assert json.loads(seen["increment"].content[0].text) == 1
    assert seen["bad"].is_error and "InvalidArguments" in seen["bad"].content[0].text
    assert seen["unknown"].is_error
    assert not seen["set"].is_error
    assert any("tandem approve" in m for m in progress), progress
    assert "a person approved this call" in seen["set"].content[-1].text
    assert seen["get"].structured_content == {"a": 1}
    # The client went away: the run ended, succeeded, with its calls in the trace.
    run_id = _session_run(daemon)
    assert eventually(lambda: daemon.client.run(run_id).status == "succeeded")
    record = daemon.client.run(run_id)
    assert (record.mode, record.coordinator) == ("mcp", "mcp")
    called = [e.data["tool"] for e in record.events if e.kind == "tool.call"]
    assert called == ["state.increment", "state.set", "state.get"]
    listed_runs = tandem(daemon.project, "runs", "--workflow", "counter").stdout
    assert run_id in listed_runs


def test_a_killed_server_never_leaves_its_run_running(daemon: Daemon) -> None:
    before = {r.id for r in daemon.client.runs("counter", "", 50, mode="mcp")}
    server = subprocess.Popen(
        [*TANDEM, "--project", str(daemon.root), "mcp", "serve", "--workflow", "counter"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    hello = {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t"}}
    for message in (
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},  # opens no run: only looks
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "state__get", "arguments": {"key": "nothing"}},
        },
    ):
        server.stdin.write(json.dumps(message) + "\n")
        server.stdin.flush()
    answers = [json.loads(server.stdout.readline()) for _ in range(3)]
    assert answers[1]["id"] == 2 and answers[1]["result"]["tools"]
    assert answers[2]["id"] == 3 and answers[2]["result"]["isError"] is False
    (run,) = [r for r in daemon.client.runs("counter", "", 50, mode="mcp") if r.id not in before]
    server.kill()
    server.wait()
    assert eventually(lambda: daemon.client.run(run.id).status == "cancelled")


def test_workflows_are_tools_and_a_held_run_says_how_to_answer(daemon: Daemon) -> None:
    async def test(session: ClientSession) -> dict[str, Any]:
        listed = {t.name for t in (await session.list_tools()).tools}
        ran = await session.call_tool("run_counter", {})
        held = await session.call_tool("run_guarded", {})
        return {"listed": listed, "ran": ran, "held": held}

    seen = serve(daemon, test=test)
    assert {"run_counter", "run_guarded", "replay_script"} <= seen["listed"]
    assert seen["ran"].structured_content == {"count": 1}
    text = seen["held"].content[0].text
    run_id = text.split()[1]
    assert f"tandem approve {run_id} 1" in text and f"tandem deny {run_id} 1 REASON" in text
    assert daemon.client.decide(run_id, 0, False, "test") == [1]


def _recorded(daemon: Daemon) -> str:
    """A succeeded live run of counter."""
    recorded = daemon.client.runs("counter", "succeeded", 1, mode="live")
    if not recorded:  # this module's runs so far may not have made one: make it
        run_id = daemon.client.trigger("counter", {}, None)
        for _ in daemon.client.watch(run_id):
            pass
        recorded = daemon.client.runs("counter", "succeeded", 1, mode="live")
    return recorded[0].id


def test_runs_are_resources_with_the_rewrite_prompt_and_replay_tool(daemon: Daemon) -> None:
    run_id = _recorded(daemon)

    async def test(session: ClientSession) -> dict[str, Any]:
        resources = (await session.list_resources()).resources
        read = await session.read_resource(f"tandem://runs/{run_id}")
        prompt = await session.get_prompt("rewrite_workflow", {"workflow": "counter"})
        try:
            await session.get_prompt("rewrite_workflow", {"workflow": "../workflows/counter"})
            refused = ""
        except MCPError as error:  # a name, never a path
            refused = error.error.message
        replayed = await session.call_tool(
            "replay_script", {"workflow": "counter", "script": OTHER, "runs": [run_id]}
        )
        return {
            "resources": resources,
            "read": read,
            "prompt": prompt,
            "replayed": replayed,
            "refused": refused,
        }

    seen = serve(daemon, test=test)
    assert f"tandem://runs/{run_id}" in {str(r.uri) for r in seen["resources"]}
    trace = json.loads(seen["read"].contents[0].text)
    assert trace["id"] == run_id and any(e["kind"] == "tool.call" for e in trace["events"])
    assert seen["read"].contents[0].mime_type == "application/json"
    brief = seen["prompt"].messages[0].content.text
    assert "no workflow named '../workflows/counter'" in seen["refused"], seen["refused"]
    assert brief.startswith("# Rewrite `counter` as a script") and f"`{run_id}`" in brief
    report = seen["replayed"].structured_content
    assert report["agreed"] is False
    assert report["runs"][0]["run"] == run_id and report["runs"][0]["summary"]


def test_replay_script_refuses_what_it_cannot_replay_as_tool_errors(daemon: Daemon) -> None:
    run_id = _recorded(daemon)
    # A folder outside the workflows whose workflow.yaml names it: a path must not reach it.
    outside = daemon.root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "workflow.yaml").write_text("name: outside\ncoordinator: script\n")
    (outside / "script.py").write_text(OTHER)
    rewrites = daemon.project.config.state_dir / "rewrite"

    def written() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in rewrites.rglob("*")}

    before = written()

    def replay(**arguments: Any) -> Any:
        return lambda session: session.call_tool("replay_script", arguments)

    refused = {
        "missing": serve(daemon, test=replay(script=OTHER)),
        "path": serve(daemon, test=replay(workflow="../../outside", script=OTHER, runs=[run_id])),
        "run": serve(daemon, test=replay(workflow="counter", script=OTHER, runs=["no-such-run"])),
        "other": serve(
            daemon, "--workflow", "counter", test=replay(workflow="guarded", script=OTHER)
        ),
    }
    texts = {case: result.content[0].text for case, result in refused.items()}
    assert all(result.is_error for result in refused.values()), texts
    assert "`workflow` is required" in texts["missing"]
    assert "no workflow named '../../outside'" in texts["path"]
    assert "counter" in texts["path"], "it lists the workflows there are"
    assert "no-such-run" in texts["run"] and "_InactiveRpcError" not in texts["run"]
    assert "serves workflow 'counter' only" in texts["other"]
    assert written() == before, "nothing was written for them"


def test_without_a_daemon_it_says_to_start_one(project: Project) -> None:
    project.workflow("counter", script=COUNTER, tools=["state.*"])
    result = tandem(project, "mcp", "serve", "--workflow", "counter")
    assert result.returncode == 2 and result.stdout == ""
    assert "tandem serve" in result.stderr, result.stderr


def test_a_session_ends_succeeded_only_when_its_client_says_close(daemon: Daemon) -> None:
    # A client whose connection breaks has its requests end just as one that closes its
    # side: only the `close` request makes the run succeed.
    opening = control_pb2.SessionRequest(workflow="counter", client_name="t")
    for requests, status in (
        ([opening], "cancelled"),
        ([opening, control_pb2.SessionRequest(close=True)], "succeeded"),
    ):
        replies = daemon.client.stub.OpenSession(iter(requests))
        run_id = next(replies).run_id
        assert list(replies) == []
        assert eventually(lambda r=run_id, s=status: daemon.client.run(r).status == s), run_id


SESSION_SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    assert set(trigger) == {"mcp_client"}, trigger
    return {"count": tools.state.increment(key="by_hand")}
"""


def _session_by_hand(daemon: Daemon) -> str:
    """An MCP session of tally that made one call, closed: its run's id."""
    opened = daemon.client.open_session("tally", "by-hand", "1.0")
    with ToolHostClient(opened.toolhost_target, opened.token) as tools:
        tools.call_tool("state.increment", {"key": "by_hand"})
    opened.close()
    assert daemon.client.run(opened.run_id).status == "succeeded"
    return opened.run_id


def test_sessions_are_a_row_of_their_own_in_the_ledger(daemon: Daemon) -> None:
    _session_by_hand(daemon)
    report = daemon.client.ledger("tally", 0, 0, 1000)
    (row,) = [g for g in report["groups"] if g["coordinator"] == "mcp"]
    assert row["runs"] >= 1 and row["tool_calls"] >= 1 and not row["configured"]
    assert "MCP sessions" in report["counted"]


def test_rewrite_learns_from_and_validates_against_sessions(daemon: Daemon, tmp_path: Any) -> None:
    run_id = _session_by_hand(daemon)
    brief = tmp_path / "brief.md"
    result = tandem(daemon.project, "rewrite", "tally", "--brief", str(brief))
    assert result.returncode == 0, result.stderr
    text = brief.read_text()
    assert f"`{run_id}` (mcp, succeeded)" in text and '"mcp_client"' in text
    assert run_id in {r.id for r in recorded_runs(daemon.client, "tally")}
    # A candidate is given the session's trigger (the client); making its calls, it agrees.
    workflow = load(daemon.client, daemon.project.root / "workflows" / "tally")
    candidate = write_candidate(workflow, tmp_path / "state", SESSION_SCRIPT)
    (verdict,) = validate(daemon.client, [daemon.client.run(run_id)], candidate)
    assert verdict.agree, verdict.report()


def test_a_workflow_that_does_not_load_is_refused_saying_why(project: Project) -> None:
    project.workflow("broke", script=COUNTER, tools=["nosuch.*"])
    daemon = Daemon(project)
    try:
        served = tandem(project, "mcp", "serve", "--workflow", "broke")
        assert served.returncode == 2 and served.stdout == ""
        assert "'broke' does not load" in served.stderr and "nosuch" in served.stderr
        listed = tandem(project, "tools", "broke")
        assert "does not load" in listed.stderr and "did you mean" not in listed.stderr
    finally:
        daemon.close()
