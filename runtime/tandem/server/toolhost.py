"""The ToolHost servicer: authenticates the run token and hands every call to its run."""

from __future__ import annotations

import json
from typing import Any

import grpc
from tandem_sdk._convert import annotations_pb
from tandem_sdk._pb import common_pb2, toolhost_pb2, toolhost_pb2_grpc
from tandem_sdk.errors import InvalidArguments, ProtocolMismatch, Unauthenticated
from tandem_sdk.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, SUBAGENT_HEADER

from tandem.llm.subagent import SubagentCall, SubagentService
from tandem.runs import RunManager
from tandem.session import RunSession
from tandem.tools import HostTool

from .status import unary

Context = grpc.aio.ServicerContext[Any, Any]


def tool_spec(tool: HostTool) -> common_pb2.ToolSpec:
    return common_pb2.ToolSpec(
        name=tool.name,
        description=tool.description,
        input_schema_json=tool.schema_json,
        side_effects=tool.side_effects,
        annotations=annotations_pb(tool.annotations),
        dry_run_result_json=tool.dry_run_result_json,
    )


class ToolHostServicer(toolhost_pb2_grpc.ToolHostServicer):
    def __init__(self, runs: RunManager, subagents: SubagentService) -> None:
        self._runs = runs
        self._subagents = subagents

    def _session(self, context: Context) -> RunSession:
        metadata = dict(context.invocation_metadata() or ())
        protocol = str(metadata.get(PROTOCOL_HEADER, PROTOCOL_VERSION))
        if protocol != str(PROTOCOL_VERSION):
            raise ProtocolMismatch(int(protocol) if protocol.isdigit() else -1, PROTOCOL_VERSION)
        scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing 'authorization: Bearer <run token>' metadata")
        return self._runs.authenticate(token)

    @unary
    async def GetRun(
        self, request: toolhost_pb2.GetRunRequest, context: Context
    ) -> toolhost_pb2.GetRunResponse:
        session = self._session(context)
        limits = session.limits
        return toolhost_pb2.GetRunResponse(
            run_id=session.id,
            workflow=session.workflow.name,
            workflow_version=session.workflow.version,
            trigger_json=json.dumps(session.trigger),
            coordinator=session.coordinator,
            protocol_version=PROTOCOL_VERSION,
            limits=common_pb2.RunLimits(
                timeout_s=limits.timeout_s,
                max_tool_calls=limits.max_tool_calls,
                max_turns=limits.max_turns,
                max_tokens=limits.max_tokens,
                memory_mb=limits.memory_mb,
            ),
        )

    @unary
    async def ListTools(
        self, request: toolhost_pb2.ListToolsRequest, context: Context
    ) -> toolhost_pb2.ListToolsResponse:
        session = self._session(context)
        return toolhost_pb2.ListToolsResponse(
            tools=[tool_spec(t) for t in session.tools_in_scope()]
        )

    @unary
    async def CallTool(
        self, request: toolhost_pb2.CallToolRequest, context: Context
    ) -> toolhost_pb2.CallToolResponse:
        session = self._session(context)
        metadata = dict(context.invocation_metadata() or ())
        subagent = metadata.get(SUBAGENT_HEADER)
        outcome = await session.call_tool(
            request.name, request.arguments_json, subagent=str(subagent) if subagent else None
        )
        if outcome.error is not None:
            error = outcome.error
            return toolhost_pb2.CallToolResponse(
                is_error=True,
                error=common_pb2.ToolError(
                    message=error.reason,
                    type=error.type,
                    retryable=error.retryable,
                ),
            )
        return toolhost_pb2.CallToolResponse(result_json=outcome.result_json or "null")

    @unary
    async def ListFiles(
        self, request: toolhost_pb2.ListFilesRequest, context: Context
    ) -> toolhost_pb2.ListFilesResponse:
        return toolhost_pb2.ListFilesResponse(paths=self._session(context).list_files())

    @unary
    async def ReadFile(
        self, request: toolhost_pb2.ReadFileRequest, context: Context
    ) -> toolhost_pb2.ReadFileResponse:
        return toolhost_pb2.ReadFileResponse(content=self._session(context).read_file(request.path))

    @unary
    async def Log(
        self, request: toolhost_pb2.LogRequest, context: Context
    ) -> toolhost_pb2.LogResponse:
        session = self._session(context)
        try:
            fields = json.loads(request.fields_json or "{}")
        except json.JSONDecodeError:
            fields = {"raw": request.fields_json}
        session.log(request.level or "info", request.message, fields)
        return toolhost_pb2.LogResponse()

    @unary
    async def Subagent(
        self, request: toolhost_pb2.SubagentRequest, context: Context
    ) -> toolhost_pb2.SubagentResponse:
        session = self._session(context)
        call = SubagentCall(
            prompt=request.prompt,
            input=_json_field(request.input_json, "input_json"),
            schema=_json_field(request.output_schema_json, "output_schema_json"),
            tools=list(request.tools),
            model=request.model or None,
        )
        answer = await self._subagents.run(session, call)
        usage = answer.usage
        return toolhost_pb2.SubagentResponse(
            text=answer.text,
            output_json="" if answer.output is None else json.dumps(answer.output),
            usage=common_pb2.Usage(
                input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"],
                cache_read_tokens=usage["cache_read_tokens"],
                cache_write_tokens=usage["cache_write_tokens"],
                model_calls=usage["model_calls"],
            ),
        )


def _json_field(text: str, field: str) -> Any:
    """An optional JSON field: empty means absent."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArguments(f"{field} is not JSON: {error}") from None
