"""The MCP server (the low-level `mcp` Server: tools defined by JSON Schema): one per
connection, over a Control client of the daemon. With a workflow, its tools in scope are
served as one run (mode `mcp`); without, each workflow is a tool. Both serve the recorded
runs, the prompt `rewrite_workflow` and the tool `replay_script`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.abc
import anyio.to_thread
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from tandem import __version__
from tandem.client import ControlClient

from . import convert, rewrite, workflows
from .session import McpSession

Context = ServerRequestContext[Any, Any]


@dataclass
class Served:
    client: ControlClient
    workflows_dir: Path
    state_dir: Path
    group: anyio.abc.TaskGroup
    session: McpSession | None = None  # with a workflow: its run, opened at the first need


def build(served_for: Callable[[Context], Served]) -> Server[Any]:
    """A Server whose handlers act for `served_for(ctx)`: over stdio, the one connection's;
    over HTTP, each connection's own."""

    async def opened(ctx: Context, served: Served) -> McpSession:
        assert served.session is not None
        info = ctx.session.client_params.client_info if ctx.session.client_params else None
        name, version = (info.name, info.version) if info else ("unknown", "")
        await served.session.open(served.group, name, version)
        return served.session

    async def list_tools(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        served = served_for(ctx)
        if served.session is not None:
            listed = await served.session.tools()
            tools = [t for t in map(convert.mcp_tool, listed) if t is not None]
        else:
            tools = await anyio.to_thread.run_sync(workflows.workflow_tools, served.client)
        return types.ListToolsResult(tools=[*tools, rewrite.replay_tool()])

    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> types.CallToolResult:
        served = served_for(ctx)
        arguments = params.arguments or {}
        if params.name == rewrite.REPLAY_TOOL:
            return await anyio.to_thread.run_sync(
                rewrite.replay_script,
                served.client,
                served.workflows_dir,
                served.state_dir,
                arguments,
                served.session.workflow if served.session else None,
            )
        if served.session is None:
            workflow = params.name.removeprefix(workflows.PREFIX)
            if workflow == params.name:
                return convert.error(f"no tool {params.name!r}: workflows are run_<workflow>")

            async def progress(done: float, message: str) -> None:
                await ctx.session.report_progress(done, None, message)

            return await workflows.run_workflow(served.client, workflow, arguments, progress)
        session = await opened(ctx, served)
        name = convert.tandem_name(params.name)
        if name is None:
            return convert.error(f"no tool {params.name!r} in workflow {session.workflow}")

        async def report(message: str) -> None:
            await ctx.session.report_progress(0, None, message)

        return await session.call(name, arguments, report)

    async def list_resources(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        served = served_for(ctx)
        workflow = served.session.workflow if served.session else ""
        cursor = params.cursor if params else None
        return await anyio.to_thread.run_sync(rewrite.list_runs, served.client, workflow, cursor)

    async def read_resource(
        ctx: Context, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        client = served_for(ctx).client
        return await anyio.to_thread.run_sync(rewrite.read_run, client, str(params.uri))

    async def list_prompts(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[rewrite.prompt()])

    async def get_prompt(
        ctx: Context, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        if params.name != rewrite.PROMPT:
            raise MCPError(types.INVALID_PARAMS, f"no prompt {params.name!r}: {rewrite.PROMPT}")
        served = served_for(ctx)
        workflow = (params.arguments or {}).get("workflow") or (
            served.session.workflow if served.session else ""
        )
        bound = served.session.workflow if served.session else None
        try:
            return await anyio.to_thread.run_sync(
                rewrite.rewrite_brief, served.client, served.workflows_dir, workflow, bound
            )
        except rewrite.Refused as error:  # the client's mistake: an error, no traceback
            raise MCPError(types.INVALID_PARAMS, f"{rewrite.PROMPT}: {error}") from None

    return Server(
        "tandem",
        version=__version__,
        instructions="Tandem's workflows, their tools and recorded runs.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )
