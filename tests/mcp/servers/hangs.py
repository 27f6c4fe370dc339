"""An MCP server whose `hang` tool never answers; `echo` answers as usual."""

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("hangs", version="1.0")


@server.tool()
def echo(value: int) -> int:
    """Return the value."""
    return value


@server.tool()
async def hang() -> str:
    """Never return."""
    await anyio.sleep_forever()
    return "unreachable"


server.run("stdio")
