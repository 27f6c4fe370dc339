"""Edges of MCP servers as plugins: two reloads at once (the plugin folders' watcher and
the MCP config files' may see one change together) start a new server once and leave no
process behind; a server's relative paths are the project root's wherever the command
starts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tandem.plugins import PluginManager
from tandem.testing.daemon import TANDEM

PROBE = Path(__file__).resolve().parent / "probe_server.py"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_reloads_at_once_start_a_new_server_once(tmp_path: Path) -> None:
    # Children of this process it did not start here (an earlier test's, still ending or
    # not yet reaped, in the same test worker) are not this test's servers.
    earlier = set(_children())

    async def main() -> tuple[list[list[str]], list[int], int]:
        manager = PluginManager([], tmp_path / "sock", tmp_path / "data", project_root=tmp_path)
        (tmp_path / "sock").mkdir()
        await manager.start()
        server = {"command": sys.executable, "args": [str(PROBE)]}
        (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"probe": server}}))
        changes = await asyncio.gather(manager.reload(), manager.reload())
        probe = manager.plugins["probe"]
        started = [pid for pid in _children() if pid not in earlier]
        serving = probe.pid or 0
        await manager.stop()
        return changes, started, serving

    changes, started, serving = asyncio.run(main())
    assert sorted(map(tuple, changes)) == [(), ("started mcp server probe",)]
    assert started == [serving], "one server process, the one serving"
    assert not _alive(serving)


def _children() -> list[int]:
    """This process's child processes."""
    me = os.getpid()
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                children.append(int(entry.name))
    return children


def test_a_servers_relative_paths_are_the_project_roots(tmp_path: Path) -> None:
    shutil.copy(PROBE, tmp_path / "probe.py")
    server = {"command": sys.executable, "args": ["probe.py"]}  # as pasted from .mcp.json
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"probe": server}}))
    (tmp_path / "workflows").mkdir()
    listed = subprocess.run(
        [*TANDEM, "--project", str(tmp_path), "tools"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "probe.environ(" in listed.stdout, listed.stderr
