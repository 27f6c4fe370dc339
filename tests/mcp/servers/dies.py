"""An MCP server whose `die` tool kills the process while the call is in flight.

`echo` answers as usual, so a restarted server shows that it is back.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("dies", version="1.0")


@server.tool()
def echo(value: int) -> int:
    """Return the value."""
    return value


@server.tool()
def die() -> str:
    """Exit before answering."""
    os._exit(3)


server.run("stdio")
