"""A synchronous ToolHost client: what a script coordinator talks through.

Only this module and the plugin server touch generated `*_pb2` types; callers get plain
Python values and the exceptions of `tandem_sdk.errors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc

from ._pb import toolhost_pb2, toolhost_pb2_grpc
from ._status import error_from_rpc
from .errors import ProtocolMismatch, ToolError
from .protocol import GRPC_OPTIONS, PROTOCOL_HEADER, PROTOCOL_VERSION


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    workflow: str
    workflow_version: str
    trigger: Any
    coordinator: str
    limits: dict[str, float]


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]
    side_effects: bool


class ToolHostClient:
    """One run's connection to the host. `target` is a gRPC target such as `unix:/path`."""

    def __init__(self, target: str, token: str) -> None:
        self._channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)
        self._stub = toolhost_pb2_grpc.ToolHostStub(self._channel)
        self._metadata = (
            ("authorization", f"Bearer {token}"),
            (PROTOCOL_HEADER, str(PROTOCOL_VERSION)),
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ToolHostClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get_run(self) -> RunInfo:
        reply = self._call(self._stub.GetRun, toolhost_pb2.GetRunRequest())
        if reply.protocol_version != PROTOCOL_VERSION:
            raise ProtocolMismatch(PROTOCOL_VERSION, reply.protocol_version)
        limits = reply.limits
        return RunInfo(
            run_id=reply.run_id,
            workflow=reply.workflow,
            workflow_version=reply.workflow_version,
            trigger=json.loads(reply.trigger_json or "null"),
            coordinator=reply.coordinator,
            limits={
                "timeout_s": limits.timeout_s,
                "max_tool_calls": limits.max_tool_calls,
                "max_turns": limits.max_turns,
                "max_tokens": limits.max_tokens,
                "memory_mb": limits.memory_mb,
            },
        )

    def list_tools(self) -> list[ToolInfo]:
        reply = self._call(self._stub.ListTools, toolhost_pb2.ListToolsRequest())
        return [
            ToolInfo(t.name, t.description, json.loads(t.input_schema_json), t.side_effects)
            for t in reply.tools
        ]

    def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call a tool; returns its JSON result or raises ToolError / InterfaceError."""
        request = toolhost_pb2.CallToolRequest(name=name, arguments_json=json.dumps(arguments))
        reply = self._call(self._stub.CallTool, request, tool=name)
        if reply.is_error:
            raise ToolError(
                reply.error.message,
                tool=name,
                type=reply.error.type,
                retryable=reply.error.retryable,
            )
        return json.loads(reply.result_json) if reply.result_json else None

    def list_files(self) -> list[str]:
        return list(self._call(self._stub.ListFiles, toolhost_pb2.ListFilesRequest()).paths)

    def read_file(self, path: str) -> bytes:
        return bytes(
            self._call(self._stub.ReadFile, toolhost_pb2.ReadFileRequest(path=path)).content
        )

    def log(self, level: str, message: str, fields: dict[str, Any] | None = None) -> None:
        request = toolhost_pb2.LogRequest(
            level=level, message=message, fields_json=json.dumps(fields or {}, default=str)
        )
        self._call(self._stub.Log, request)

    def _call(self, method: Any, request: Any, *, tool: str | None = None) -> Any:
        try:
            return method(request, metadata=self._metadata)
        except grpc.RpcError as error:
            raise error_from_rpc(error, tool=tool) from None
