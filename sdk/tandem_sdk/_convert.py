"""Between ToolHost messages and plain Python, shared by the sync and the async client."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._pb import common_pb2, toolhost_pb2
from .annotations import ToolAnnotations
from .errors import GuardRefused, ProtocolMismatch, ToolError
from .protocol import PROTOCOL_VERSION


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
    annotations: ToolAnnotations = field(default_factory=ToolAnnotations)

    @property
    def side_effects(self) -> bool:
        return self.annotations.side_effects


@dataclass(frozen=True)
class SubagentResult:
    text: str  # the model's final text
    output: Any  # the parsed answer when a schema was given, else None
    usage: dict[str, int] = field(default_factory=dict)  # this subagent's own tokens


def call_timeout(info: RunInfo, current: float) -> float:
    """The deadline for a run's calls: no call can usefully outlive the run itself."""
    timeout = info.limits.get("timeout_s", 0)
    return float(timeout) if timeout > 0 else current


def run_info(reply: toolhost_pb2.GetRunResponse) -> RunInfo:
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


def tool_infos(reply: toolhost_pb2.ListToolsResponse) -> list[ToolInfo]:
    return [tool_info(t) for t in reply.tools]


def tool_info(spec: common_pb2.ToolSpec) -> ToolInfo:
    return ToolInfo(
        spec.name, spec.description, json.loads(spec.input_schema_json), annotations_of(spec)
    )


def annotations_of(spec: common_pb2.ToolSpec) -> ToolAnnotations:
    """A spec's annotations; from `side_effects` alone when the sender predates them."""
    if not spec.HasField("annotations"):
        return ToolAnnotations(read_only=not spec.side_effects)
    a = spec.annotations
    return ToolAnnotations(a.read_only, a.destructive, a.idempotent, a.open_world)


def annotations_pb(annotations: ToolAnnotations) -> common_pb2.ToolAnnotations:
    return common_pb2.ToolAnnotations(**annotations.to_json())


def call_request(name: str, arguments: dict[str, Any]) -> toolhost_pb2.CallToolRequest:
    return toolhost_pb2.CallToolRequest(name=name, arguments_json=json.dumps(arguments))


def call_result(reply: toolhost_pb2.CallToolResponse, name: str) -> Any:
    """The tool's JSON result, or ToolError when the tool ran and failed."""
    if reply.is_error and reply.error.type == GuardRefused.TYPE:
        raise GuardRefused(reply.error.message, tool=name)
    if reply.is_error:
        raise ToolError(
            reply.error.message, tool=name, type=reply.error.type, retryable=reply.error.retryable
        )
    return json.loads(reply.result_json) if reply.result_json else None


def log_request(level: str, message: str, fields: dict[str, Any] | None) -> toolhost_pb2.LogRequest:
    return toolhost_pb2.LogRequest(
        level=level, message=message, fields_json=json.dumps(fields or {}, default=str)
    )


def subagent_request(
    prompt: str,
    input: Any = None,
    schema: dict[str, Any] | None = None,
    tools: Sequence[str] | None = None,
    model: str | None = None,
) -> toolhost_pb2.SubagentRequest:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("subagent() needs a non-empty prompt")
    if isinstance(tools, str):
        raise TypeError("subagent(tools=...) takes a list of tool names or globs, not a string")
    return toolhost_pb2.SubagentRequest(
        prompt=prompt,
        input_json="" if input is None else json.dumps(input),
        output_schema_json="" if schema is None else json.dumps(schema),
        tools=list(tools or ()),
        model=model or "",
    )


def subagent_result(reply: toolhost_pb2.SubagentResponse) -> SubagentResult:
    return SubagentResult(
        text=reply.text,
        output=json.loads(reply.output_json) if reply.output_json else None,
        usage=usage_of(reply.usage),
    )


def usage_of(usage: common_pb2.Usage) -> dict[str, int]:
    """Token usage as the host and the SDK count it, from its message."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "model_calls": usage.model_calls,
    }
