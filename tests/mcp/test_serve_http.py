"""Tandem's MCP server over streamable HTTP at /mcp on the daemon's listener, driven by the
official `mcp` client: the bearer token, the Host check, and a session as one run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Daemon, Project, eventually
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from tandem.testing.daemon import TANDEM

TOKEN = "s3cret-token"
COUNTER = """
def handler(trigger, tools, virtual_files, subagent):
    return {"count": tools.state.increment(key="runs")}
"""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    project = Project(tmp_path_factory.mktemp("mcp_http") / "project")
    (project.root / "tandem.yaml").write_text("http:\n  mcp: true\n")
    project.workflow("counter", script=COUNTER, tools=["state.*"])
    daemon = Daemon(project, "--http", "127.0.0.1:0", env={"TANDEM_MCP_TOKEN": TOKEN})
    url = next(m.group(1) for line in daemon.log if (m := re.search(r"http listener (\S+)", line)))
    yield daemon, url
    daemon.close()


def session(url: str, test: Any, token: str = TOKEN) -> Any:
    """Run `test(session)` with the official client over streamable HTTP."""

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            return await test(client)

    return anyio.run(main)


def post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(INITIALIZE).encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_a_workflows_tools_over_http_are_one_run_ended_by_the_client(
    served: tuple[Daemon, str],
) -> None:
    daemon, url = served

    async def test(client: ClientSession) -> dict[str, Any]:
        listed = {t.name for t in (await client.list_tools()).tools}
        first = await client.call_tool("state__increment", {"key": "k"})
        second = await client.call_tool("state__increment", {"key": "k"})
        (run,) = daemon.client.runs("counter", "running", 5, mode="mcp")
        return {"listed": listed, "first": first, "second": second, "run": run.id}

    seen = session(url + "/mcp/counter", test)
    assert {"state__get", "state__increment", "replay_script"} <= seen["listed"]
    assert [json.loads(seen[k].content[0].text) for k in ("first", "second")] == [1, 2]
    # The client deleted its session on the way out: the run ended, succeeded.
    run_id = seen["run"]
    assert eventually(lambda: daemon.client.run(run_id).status == "succeeded")
    record = daemon.client.run(run_id)
    assert (record.mode, record.coordinator) == ("mcp", "mcp")
    assert record.trigger["mcp_client"]["name"] == "mcp"  # the official client's name
    called = [e.data["tool"] for e in record.events if e.kind == "tool.call"]
    assert called == ["state.increment", "state.increment"]


def test_the_workflows_are_tools_at_mcp(served: tuple[Daemon, str]) -> None:
    _, url = served

    async def test(client: ClientSession) -> dict[str, Any]:
        listed = {t.name for t in (await client.list_tools()).tools}
        return {"listed": listed, "ran": await client.call_tool("run_counter", {})}

    seen = session(url + "/mcp", test)
    assert {"run_counter", "replay_script"} <= seen["listed"]
    assert seen["ran"].structured_content == {"count": 1}


def test_a_request_without_the_token_or_from_a_foreign_host_is_refused(
    served: tuple[Daemon, str],
) -> None:
    _, url = served
    port = url.rsplit(":", 1)[1]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, answer = post(url + "/mcp", headers)
        assert (status, answer.get("www-authenticate")) == (401, "Bearer"), headers
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert post(url + "/mcp", {**bearer, "Host": f"evil.example:{port}"})[0] == 421
    assert post(url + "/mcp", {**bearer, "Origin": "http://evil.example"})[0] == 403
    assert post(url + "/mcp/nope", bearer)[0] == 404
    assert post(url + "/mcp", {**bearer, "Host": f"localhost:{port}"})[0] == 200


def test_mcp_on_without_a_token_is_a_start_error(project: Project) -> None:
    (project.root / "tandem.yaml").write_text("http:\n  mcp: true\n")
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_MCP_TOKEN"}
    result = subprocess.run(
        [*TANDEM, "--project", str(project.root), "serve", "--http", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert "TANDEM_MCP_TOKEN is not set" in result.stderr, result.stderr
    assert not project.config.control_socket.exists()


def test_mcp_inspector_cli_lists_and_calls_over_http(
    served: tuple[Daemon, str], inspector: Path, tmp_path: Path
) -> None:
    """MCP Inspector's CLI, a peer nobody here wrote, over streamable HTTP with the token."""
    _, url = served
    cli = [str(inspector), "--cli", url + "/mcp/counter", "--transport", "http"]
    cli += ["--header", f"Authorization: Bearer {TOKEN}"]
    env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "catalog.json")}

    def inspect(*arguments: str) -> Any:
        done = subprocess.run(
            [*cli, *arguments], capture_output=True, text=True, timeout=60, env=env
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    listed = inspect("--method", "tools/list")
    increment = next(t for t in listed["tools"] if t["name"] == "state__increment")
    assert increment["annotations"]["readOnlyHint"] is False
    called = inspect(
        "--method", "tools/call", "--tool-name", "state__increment", "--tool-arg", "key=inspected"
    )
    assert called["isError"] is False
    assert [item["text"] for item in called["content"]] == ["1"]  # a number: text only
