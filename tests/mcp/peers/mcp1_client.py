"""An `mcp<2` client (run by the peer venv's python): the older protocol era.

Usage: mcp1_client.py TOOL ARGS_JSON -- COMMAND [ARG...]

Starts COMMAND as a stdio MCP server, initializes offering protocol 2025-06-18 (the first
with structured output), lists the tools, calls TOOL with ARGS_JSON, and prints one JSON
object: the negotiated version, the server's name, the tools and the call's result.
"""

import json
import sys

import anyio
import mcp.types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

OFFERED = "2025-06-18"


async def main(tool: str, arguments: dict, command: list[str]) -> None:
    mcp.types.LATEST_PROTOCOL_VERSION = OFFERED  # what initialize offers
    params = StdioServerParameters(command=command[0], args=command[1:])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        with anyio.fail_after(20):
            init = await session.initialize()
            listed = await session.list_tools()
            result = await session.call_tool(tool, arguments)
    report = {
        "protocolVersion": init.protocolVersion,
        "server": init.serverInfo.name,
        "tools": [t.model_dump(by_alias=True, exclude_none=True) for t in listed.tools],
        "result": result.model_dump(by_alias=True, exclude_none=True),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    split = sys.argv.index("--")
    anyio.run(main, sys.argv[1], json.loads(sys.argv[2]), sys.argv[split + 1 :])
