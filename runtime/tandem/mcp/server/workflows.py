"""The workflows themselves as tools (`tandem mcp serve` without --workflow): `run_<name>`
triggers a run with the arguments as its payload and returns its output. Its progress
(each tool call) goes to the client as it happens; a run held for approval is answered at
once, saying how a person answers it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
from tandem_sdk._pb import control_pb2

from tandem.client import ControlClient

from . import convert

PREFIX = "run_"
Progress = Callable[[float, str], Coroutine[Any, Any, None]]


def tool_name(workflow: str) -> str | None:
    name = PREFIX + workflow
    return name if re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) else None


def workflow_tools(client: ControlClient) -> list[types.Tool]:
    tools = []
    for info in client.workflows():
        name = tool_name(info.name)
        if not info.loaded or name is None:
            continue
        schema = json.loads(info.input_schema_json) if info.input_schema_json else {}
        tools.append(
            types.Tool(
                name=name,
                title=f"run workflow {info.name}",
                description=f"Run the Tandem workflow {info.name} and return its output. "
                + (info.description or ""),
                input_schema=schema if schema.get("type") == "object" else convert.ANY_OBJECT,
                # A run may do anything its workflow's tools do.
                annotations=types.ToolAnnotations(
                    read_only_hint=False,
                    destructive_hint=True,
                    idempotent_hint=False,
                    open_world_hint=True,
                ),
            )
        )
    return tools


async def run_workflow(
    client: ControlClient, workflow: str, payload: dict[str, Any], progress: Progress
) -> types.CallToolResult:
    try:
        run_id = await anyio.to_thread.run_sync(client.trigger, workflow, payload, None)
    except Exception as error:  # the daemon refused it: unknown workflow, payload, queue
        return convert.error(f"workflow {workflow} did not start: {_details(error)}")
    # A thread for the run's life: its own limiter, not a slot of the shared pool.
    held = await anyio.to_thread.run_sync(
        _follow, client, run_id, progress, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(1)
    )
    if held is not None:
        call = f" {held['call']}" if "call" in held else ""
        return convert.text(
            f"run {run_id} of workflow {workflow} is held for a person's approval of call"
            f"{call} ({held.get('tool')}). Answer it with `tandem approve {run_id}{call}` or"
            f" `tandem deny {run_id}{call} REASON`; its output is then in"
            f" `tandem runs show {run_id}`."
        )
    record = await anyio.to_thread.run_sync(client.run, run_id)
    if record.status != "succeeded":
        return convert.error(f"run {run_id} {record.status}: {record.error or ''}".rstrip(": "))
    return convert.result(record.output, f"run {run_id} succeeded")


def _follow(client: ControlClient, run_id: str, progress: Progress) -> dict[str, Any] | None:
    """Report each call as progress until the run ends (None) or waits for a person (the
    waiting event's data)."""
    stream = client.stub.WatchRun(control_pb2.WatchRunRequest(run_id=run_id))
    calls = 0
    try:
        for batch in stream:
            for event in batch.events:
                data = json.loads(event.data_json)
                if event.kind == "tool.call":
                    calls += 1
                    anyio.from_thread.run(progress, calls, f"call {calls}: {data.get('tool')}")
                elif event.kind == "approval.waiting":
                    return dict(data)
    finally:
        stream.cancel()
    return None


def _details(error: Exception) -> str:
    details = getattr(error, "details", None)
    return str(details()) if callable(details) else str(error)
