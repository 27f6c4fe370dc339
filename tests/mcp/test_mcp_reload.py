"""An MCP server's restarts and reloads, against `McpServer` and `PluginManager` directly
(no daemon): a reload while restarts fail, and a config file that stops parsing."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from tandem.mcp.config import ServerConfig, load_servers
from tandem.mcp.provider import McpServer
from tandem.plugins.manager import PluginManager

PROBE = Path(__file__).parent / "probe_server.py"


async def _until(condition: Callable[[], object], within: float = 20.0) -> None:
    """Wait for a condition the server's own tasks bring about, within a bound."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come about in time"
        await asyncio.sleep(0.05)


def _running(script: Path) -> list[int]:
    """The live processes running `script` (a zombie's cmdline is empty)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(script).encode() in cmdline:
                found.append(int(entry.name))
    return found


def _stdio(script: Path) -> ServerConfig:
    return ServerConfig(
        name="probe",
        source="tandem.yaml",
        transport="stdio",
        command=sys.executable,
        args=(str(script),),
    )


def test_a_reload_while_restarts_fail_leaves_one_server_and_stop_ends_it(
    tmp_path: Path,
) -> None:
    broken, fixed = tmp_path / "server.py", tmp_path / "fixed.py"
    shutil.copy(PROBE, broken)
    shutil.copy(PROBE, fixed)

    async def scenario() -> None:
        server = McpServer(_stdio(broken))
        await server.start()
        try:
            first = server.pid
            assert first is not None
            broken.write_text("raise SystemExit(2)\n")  # every restart now fails
            os.kill(first, signal.SIGKILL)
            # A restart failed: last_error is its load error, which names the command.
            await _until(lambda: server.last_error and str(broken) in server.last_error)
            assert await server.reload(_stdio(fixed)) is None
            reloaded = server.pid
            # The supervisor is back to watching once it has cleared the reload's signal.
            await _until(lambda: not server._swapped.is_set())
            assert _running(fixed) == [reloaded], "one server, the one the reload started"
            assert server.pid == reloaded
        finally:
            await server.stop()
        assert _running(fixed) == [], "stop() ends every server process it started"

    asyncio.run(scenario())


def test_a_tandem_yaml_that_does_not_parse_keeps_its_servers_config(tmp_path: Path) -> None:
    """tandem.yaml marks a tool of a server `.mcp.json` shares destructive; a typo in
    tandem.yaml leaves the server as tandem.yaml last gave it, never as `.mcp.json` does."""
    root = tmp_path / "project"
    root.mkdir()
    time_server = {"command": str(Path(sys.executable).parent / "mcp-server-time")}
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": {"time": time_server}}))
    override = {"get_current_time": {"readOnlyHint": False, "destructiveHint": True}}
    good = yaml.safe_dump({"mcp_servers": {"time": {**time_server, "annotations": override}}})
    (root / "tandem.yaml").write_text(good)
    broken = good.replace("mcp_servers:", "mcp_servers: [")  # not YAML any more

    def destructive(manager: PluginManager) -> bool:
        tool, _ = manager.resolve("time.get_current_time")
        return not tool.annotations.read_only and tool.annotations.destructive

    async def scenario() -> None:
        manager = PluginManager([], tmp_path / "sockets", tmp_path / "data", project_root=root)
        await manager.start()
        try:
            server = manager.plugins["time"]
            assert destructive(manager), "tandem.yaml's override holds"
            (root / "tandem.yaml").write_text(broken)
            await manager.reload()
            assert manager.plugins["time"] is server and destructive(manager)
            assert server.load_error and str(root / "tandem.yaml") in server.load_error
            (root / "tandem.yaml").write_text(good)
            await manager.reload()
            assert server.load_error is None and destructive(manager)
        finally:
            await manager.stop()

    asyncio.run(scenario())
    # At start, such a server is a load error naming the file that does not parse.
    (root / "tandem.yaml").write_text(broken)
    found = load_servers(root)
    assert "time" not in found.servers
    assert str(root / "tandem.yaml") in str(found.errors["time"])
