"""`mcp`: an MCP session as a run. The MCP client is the coordinator: it calls the run's
tools through ToolHost with the run's token (`tandem mcp serve`), and the run lasts as long
as its Control stream (OpenSession) stays open."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandem.session import RunSession


class McpCoordinator:
    kind = "mcp"

    def __init__(self) -> None:
        # Set when the client closes its session cleanly: the run then succeeds.
        self._closed: dict[str, asyncio.Event] = {}

    def closed(self, run_id: str) -> asyncio.Event:
        return self._closed.setdefault(run_id, asyncio.Event())

    async def run(self, session: RunSession) -> Any:
        try:
            await self.closed(session.id).wait()
        finally:
            self._closed.pop(session.id, None)
        return {"tool_calls": session.tool_calls}
