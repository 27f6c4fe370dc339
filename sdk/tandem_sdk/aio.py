"""An asyncio ToolHost client, for coordinators that live in an event loop (the host's
LLM loop is one). Same calls, values and exceptions as the sync `ToolHostClient`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio

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

Reply = TypeVar("Reply")


class AsyncToolHostClient:
    """One run's asyncio connection to the host. `target` is a gRPC target (`unix:/path`)."""

    def __init__(
        self,
        target: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        # Every call has a deadline (DEADLINE_EXCEEDED raises ToolTimeout); get_run()
        # replaces the default with the run's own time limit.
        self.timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
        self._stub = toolhost_pb2_grpc.ToolHostStub(self._channel)
        self._metadata = (
            ("authorization", f"Bearer {token}"),
            (PROTOCOL_HEADER, str(PROTOCOL_VERSION)),
            *metadata,
        )

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncToolHostClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def get_run(self) -> RunInfo:
        info = run_info(await self._call(self._stub.GetRun, toolhost_pb2.GetRunRequest()))
        self.timeout_s = call_timeout(info, self.timeout_s)
        return info

    async def list_tools(self) -> list[ToolInfo]:
        return tool_infos(await self._call(self._stub.ListTools, toolhost_pb2.ListToolsRequest()))

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call a tool; returns its JSON result or raises ToolError / InterfaceError."""
        reply = await self._call(self._stub.CallTool, call_request(name, arguments), tool=name)
        return call_result(reply, name)

    async def list_files(self) -> list[str]:
        reply = await self._call(self._stub.ListFiles, toolhost_pb2.ListFilesRequest())
        return list(reply.paths)

    async def read_file(self, path: str) -> bytes:
        reply = await self._call(self._stub.ReadFile, toolhost_pb2.ReadFileRequest(path=path))
        return bytes(reply.content)

    async def log(self, level: str, message: str, fields: dict[str, Any] | None = None) -> None:
        await self._call(self._stub.Log, log_request(level, message, fields))

    async def subagent(
        self,
        prompt: str,
        input: Any = None,
        schema: dict[str, Any] | None = None,
        tools: Sequence[str] | None = None,
        model: str | None = None,
    ) -> SubagentResult:
        request = subagent_request(prompt, input, schema, tools, model)
        return subagent_result(await self._call(self._stub.Subagent, request))

    async def _call(self, method: Any, request: Any, *, tool: str | None = None) -> Any:
        try:
            return await method(request, metadata=self._metadata, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, tool=tool, timeout_s=self.timeout_s) from None
