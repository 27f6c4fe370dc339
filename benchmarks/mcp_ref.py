"""The MCP reference: an echo tool on a minimal server of the official `mcp` package (2.x,
where FastMCP became `mcp.server.mcpserver.MCPServer`), called over stdio by the official
client (`stdio_client` + `ClientSession`), each `call_tool` round trip timed in the client.

The client's event loop runs in a thread of its own (an anyio blocking portal), so the
session stays open across rounds; the timing happens inside that loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from importlib.metadata import version

from anyio.from_thread import start_blocking_portal
from mcp import ClientSession, StdioServerParameters, stdio_client
from tandem.testing.closing import Closing

SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("bench")

@server.tool()
def echo(value: int) -> int:
    """Return the value."""
    return value

server.run("stdio")
'''

MCP_VERSION = version("mcp")


@asynccontextmanager
async def _session(command: list[str]) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=command[0], args=command[1:])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def _timed_calls(session: ClientSession, tool: str, calls: int) -> list[float]:
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        result = await session.call_tool(tool, {"value": i})
        samples.append(time.perf_counter() - started)
        if result.is_error:
            raise SystemExit(f"mcp echo failed: {result.content}")
    return samples


class McpEcho(Closing):
    """One stdio MCP server and one client session, open until closed: by default the
    minimal server above; else `command`, whose echo tool is named `tool`."""

    def __init__(self, command: list[str] | None = None, tool: str = "echo") -> None:
        command = command or [sys.executable, "-I", "-c", SERVER]
        self.tool = tool
        self._stack = ExitStack()
        portal = self._stack.enter_context(start_blocking_portal())
        session = portal.wrap_async_context_manager(_session(command))
        self._session = self._stack.enter_context(session)
        self._portal = portal
        self.samples(20)  # warm up both ends

    def samples(self, calls: int) -> list[float]:
        return self._portal.call(_timed_calls, self._session, self.tool, calls)

    def close(self) -> None:
        self._stack.close()
