"""A small MCP server of the tests' own: reports its environment, dies mid-call, and
changes its tool list on demand."""

import os

from mcp.server.mcpserver import Context, MCPServer

app = MCPServer("probe")


@app.tool()
def environ() -> dict[str, str]:
    """The server's environment."""
    return dict(os.environ)


@app.tool()
def die() -> str:
    """Exit in the middle of the call."""
    os._exit(3)


@app.tool()
async def grow(ctx: Context) -> str:
    """Add a tool, and tell the client its tool list changed."""

    def extra() -> str:
        """A tool added while the server runs."""
        return "extra"

    app.add_tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"


if __name__ == "__main__":
    app.run()
