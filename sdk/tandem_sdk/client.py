"""A synchronous ToolHost client: what a script coordinator talks through.

Only the clients (this module, `aio`, and their shared `_convert`) and the plugin server
touch generated `*_pb2` types; callers get plain Python values and the exceptions of
`tandem_sdk.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from ._convert import (
    RunInfo,
    SubagentResult,
    ToolInfo,
    call_request,
    call_result,
    call_timeout,
    log_request,
    run_info,
    subagent_request,
    subagent_result,
    tool_infos,
)
from ._pb import toolhost_pb2, toolhost_pb2_grpc
from ._status import error_from_rpc
from .protocol import DEFAULT_CALL_TIMEOUT_S, GRPC_OPTIONS, PROTOCOL_HEADER, PROTOCOL_VERSION

__all__ = ["RunInfo", "SubagentResult", "ToolHostClient", "ToolInfo"]


class ToolHostClient:
    """One run's connection to the host. `target` is a gRPC target such as `unix:/path`."""

    def __init__(
        self, target: str, token: str, *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
    ) -> None:
        # Every call has a deadline (DEADLINE_EXCEEDED raises ToolTimeout); get_run()
        # replaces the default with the run's own time limit.
        self.timeout_s = timeout_s
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
        info = run_info(self._call(self._stub.GetRun, toolhost_pb2.GetRunRequest()))
        self.timeout_s = call_timeout(info, self.timeout_s)
        return info

    def list_tools(self) -> list[ToolInfo]:
        return tool_infos(self._call(self._stub.ListTools, toolhost_pb2.ListToolsRequest()))

    def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call a tool; returns its JSON result or raises ToolError / InterfaceError."""
        return call_result(
            self._call(self._stub.CallTool, call_request(name, arguments), tool=name), name
        )

    def list_files(self) -> list[str]:
        return list(self._call(self._stub.ListFiles, toolhost_pb2.ListFilesRequest()).paths)

    def read_file(self, path: str) -> bytes:
        return bytes(
            self._call(self._stub.ReadFile, toolhost_pb2.ReadFileRequest(path=path)).content
        )

    def log(self, level: str, message: str, fields: dict[str, Any] | None = None) -> None:
        self._call(self._stub.Log, log_request(level, message, fields))

    def subagent(
        self,
        prompt: str,
        input: Any = None,
        schema: dict[str, Any] | None = None,
        tools: Sequence[str] | None = None,
        model: str | None = None,
    ) -> SubagentResult:
        """Ask the host's LLM for help as a child of this run; raises SubagentError when it
        cannot give a (schema-valid) answer, LimitExceeded when the run's budget is spent."""
        request = subagent_request(prompt, input, schema, tools, model)
        return subagent_result(self._call(self._stub.Subagent, request))

    def _call(self, method: Any, request: Any, *, tool: str | None = None) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self.timeout_s)
        except grpc.RpcError as error:
            raise error_from_rpc(error, tool=tool, timeout_s=self.timeout_s) from None
