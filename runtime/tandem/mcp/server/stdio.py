"""`tandem mcp serve`: the MCP server over this process's stdin and stdout (only MCP
frames ever go to stdout), for the daemon's Control client."""

from __future__ import annotations

from pathlib import Path

import anyio
from mcp.server.stdio import stdio_server

from tandem.client import ControlClient

from .app import Served, build
from .session import McpSession


async def serve_stdio(
    client: ControlClient, workflows_dir: Path, state_dir: Path, workflow: str | None
) -> None:
    async with anyio.create_task_group() as group:
        session = McpSession(client, workflow) if workflow else None
        served = Served(client, workflows_dir, state_dir, group, session)
        server = build(lambda ctx: served)
        try:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        finally:
            with anyio.CancelScope(shield=True):
                if session is not None:
                    await session.close()  # the client is gone: the run succeeds
            group.cancel_scope.cancel()
