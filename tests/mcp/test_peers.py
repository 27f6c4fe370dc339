"""`tandem mcp serve` driven by peers nobody here wrote, installed by `make install`: an
`mcp<2` client in a venv of its own (the older protocol era) and MCP Inspector's CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Project
from tandem.testing.daemon import TANDEM

from .conftest import MCP1_CLIENT

CALC = '''
from tandem_sdk import tool

@tool(read_only=True)
def add(a: int, b: int) -> dict:
    """Add two numbers."""
    return {"total": a + b}
'''
UNUSED = """
def handler(trigger, tools, virtual_files, subagent):
    return None
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    project = Project(tmp_path_factory.mktemp("peers") / "project")
    project.plugin("calc", CALC)
    project.workflow("sums", script=UNUSED, tools=["calc.*"])
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\n")
    daemon = Daemon(project)
    yield daemon
    daemon.close()


def _serve(daemon: Daemon) -> list[str]:
    return [*TANDEM, "--project", str(daemon.root), "mcp", "serve", "--workflow", "sums"]


def _session_runs(daemon: Daemon) -> list[str]:
    return [run.id for run in daemon.client.runs("sums", "", 50, mode="mcp")]


def _json_out(command: list[str]) -> Any:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_mcp1_client_of_the_older_protocol_era(daemon: Daemon, mcp1_python: Path) -> None:
    before = _session_runs(daemon)
    report = _json_out(
        [str(mcp1_python), str(MCP1_CLIENT), "calc__add", '{"a": 2, "b": 3}', "--", *_serve(daemon)]
    )
    assert report["protocolVersion"] == "2025-06-18"
    add = next(tool for tool in report["tools"] if tool["name"] == "calc__add")
    assert add["inputSchema"]["required"] == ["a", "b"]
    assert add["annotations"]["readOnlyHint"] is True
    assert report["result"]["structuredContent"] == {"total": 5}
    assert report["result"].get("isError") is False
    (run_id,) = set(_session_runs(daemon)) - set(before)
    calls = [e.data for e in daemon.client.run(run_id).events if e.kind == "tool.call"]
    assert [call["tool"] for call in calls] == ["calc.add"], "the session is a recorded run"


def test_mcp_inspector_cli_lists_and_calls_over_stdio(daemon: Daemon, inspector: Path) -> None:
    cli = [str(inspector), "--cli", *_serve(daemon)]
    before = _session_runs(daemon)
    listed = _json_out([*cli, "--method", "tools/list"])
    assert _session_runs(daemon) == before, "a client that only lists leaves no run"
    add = next(tool for tool in listed["tools"] if tool["name"] == "calc__add")
    assert set(add["annotations"]) == {
        "readOnlyHint",
        "destructiveHint",
        "idempotentHint",
        "openWorldHint",
    }
    called = _json_out(
        [*cli, "--method", "tools/call", "--tool-name", "calc__add", "--tool-arg", "a=4", "b=5"]
    )
    assert called["structuredContent"] == {"total": 9}
    assert called["isError"] is False
