"""Scripts that flood their trace: log lines and refused calls count against the run's
limits, so the trace stays bounded and the daemon serves on; and a trace larger than a
gRPC message is still read whole, a page at a time, by `tandem runs show` and `export`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon, Project, tandem
from tandem.store import RunRecord

# Low, so that a trace of a few hundred KiB is over it: the daemon's and the CLI's alike.
MESSAGE_BYTES = 256 * 1024
ENV = {"TANDEM_MAX_MESSAGE_BYTES": str(MESSAGE_BYTES)}
LOOPS = 3000

LOG_FLOOD = f"""
def handler(trigger, tools, virtual_files, subagent):
    for n in range({LOOPS}):
        tools._client.log("info", f"line {{n}} " + "x" * trigger["width"])
    return "logged"
"""
REFUSAL_FLOOD = f"""
from tandem_sdk.errors import LimitExceeded, NotFound

def handler(trigger, tools, virtual_files, subagent):
    seen = {{"NotFound": 0, "LimitExceeded": 0}}
    for _ in range({LOOPS}):
        try:
            tools.nope.missing()
        except (NotFound, LimitExceeded) as error:
            seen[type(error).__name__] += 1
    return seen
"""
BIG_TRACE = """
def handler(trigger, tools, virtual_files, subagent):
    for n in range(600):
        tools._client.log("info", f"line {n} " + "y" * 1000)
    return tools.util.echo(text="after the logs")
"""
ECHO = '''
from tandem_sdk import tool

@tool(side_effects=False)
def echo(text: str) -> str:
    """Echo text back.

    Args:
        text: what to echo.
    """
    return text
'''


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    project = Project(tmp_path_factory.mktemp("flood") / "project")
    project.plugin("util", ECHO)
    project.workflow("log_lines", script=LOG_FLOOD, limits={"max_log_lines": 10})
    project.workflow("log_bytes", script=LOG_FLOOD, limits={"max_log_bytes": 10_000})
    project.workflow("refusals", script=REFUSAL_FLOOD, limits={"max_tool_calls": 5})
    project.workflow("big_trace", script=BIG_TRACE, tools=["util.*"])
    served = Daemon(project, env=ENV)
    try:
        yield served
    finally:
        served.close()


def kinds(record: RunRecord, kind: str) -> list[dict[str, object]]:
    return [e.data for e in record.events if e.kind == kind]


def test_a_log_flood_is_cut_at_the_run_limits_and_counted(daemon: Daemon) -> None:
    lines = daemon.run("log_lines", {"width": 10})
    assert lines.status == "succeeded", lines.error
    assert len(kinds(lines, "log")) == 10
    assert kinds(lines, "trace.dropped")[0]["log_lines"] == LOOPS - 10

    wide = daemon.run("log_bytes", {"width": 1000})
    assert wide.status == "succeeded", wide.error
    kept = kinds(wide, "log")
    assert 0 < len(kept) < 10
    assert sum(len(json.dumps(data)) for data in kept) <= 10_000
    assert kinds(wide, "trace.dropped")[0]["log_lines"] == LOOPS - len(kept)
    assert len(wide.events) < 20
    assert daemon.run("big_trace").status == "succeeded"  # the daemon serves on


def test_refused_calls_count_against_max_tool_calls(daemon: Daemon) -> None:
    record = daemon.run("refusals")
    assert record.status == "failed"
    assert "max_tool_calls (5)" in (record.error or "")
    refused = [data["error"] for data in kinds(record, "tool.refused")]
    assert refused == ["NotFound"] * 5 + ["LimitExceeded"]
    assert kinds(record, "trace.dropped")[0]["refused_calls"] == LOOPS - 6
    assert len(record.events) < 15


def test_a_trace_over_the_message_limit_is_read_in_pages(daemon: Daemon, tmp_path: Path) -> None:
    run_id = daemon.client.trigger("big_trace", None, None)
    for _ in daemon.client.watch(run_id):
        pass
    env = {**os.environ, **ENV}
    project = daemon.project

    shown = tandem(project, "runs", "show", run_id, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert len(shown.stdout) > MESSAGE_BYTES
    logs = [e for e in record["events"] if e["kind"] == "log"]
    assert [e["data"]["message"][:8] for e in logs[:2]] == ["line 0 y", "line 1 y"]
    assert len(logs) == 600
    assert [e["seq"] for e in record["events"]] == list(range(1, len(record["events"]) + 1))
    assert record["status"] == "succeeded"

    timeline = tandem(project, "runs", "show", run_id, env=env)
    assert timeline.returncode == 0, timeline.stderr
    assert "line 599 y" in timeline.stdout

    exported = tandem(project, "runs", "export", run_id, str(tmp_path), env=env)
    assert exported.returncode == 0, exported.stderr
    fixture = json.loads(Path(exported.stdout.strip()).read_text())
    assert fixture["calls"][0]["result"] == "after the logs"
