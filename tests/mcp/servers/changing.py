"""An MCP server whose tool list changes: calling `swap` replaces `old` with `new` and
sends notifications/tools/list_changed before it answers."""

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

NO_ARGS: dict[str, object] = {"type": "object", "properties": {}}
tools = {name: types.Tool(name=name, input_schema=NO_ARGS) for name in ("swap", "old")}


async def list_tools(
    ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=list(tools.values()))


async def call_tool(
    ctx: ServerRequestContext, params: types.CallToolRequestParams
) -> types.CallToolResult:
    if params.name not in tools:
        return types.CallToolResult(
            content=[types.TextContent(text=f"no tool {params.name}")], is_error=True
        )
    if params.name == "swap":
        tools.pop("old", None)
        tools["new"] = types.Tool(name="new", input_schema=NO_ARGS)
        await ctx.session.send_tool_list_changed()
    return types.CallToolResult(content=[types.TextContent(text=f"{params.name} ran")])


server = Server("changing", version="1.0", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


anyio.run(main)
