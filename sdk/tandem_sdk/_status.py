"""The single place where InterfaceError classes and gRPC status codes meet.

The host uses `status_for` to answer; the SDK uses `error_from_rpc` to raise. A subagent
that could not answer is not a refusal of the interface: it has a status of its own,
`SUBAGENT_FAILED`, raised as SubagentError.
"""

from __future__ import annotations

import grpc

from .errors import (
    InterfaceError,
    InvalidArguments,
    LimitExceeded,
    NotFound,
    SubagentError,
    TandemError,
    ToolNotInScope,
    ToolTimeout,
    ToolUnavailable,
    Unauthenticated,
)

_BY_CLASS: dict[type[InterfaceError], grpc.StatusCode] = {
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    ToolNotInScope: grpc.StatusCode.PERMISSION_DENIED,
    InvalidArguments: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ToolUnavailable: grpc.StatusCode.UNAVAILABLE,
    ToolTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_BY_CODE = {code: cls for cls, code in _BY_CLASS.items()}
SUBAGENT_FAILED = grpc.StatusCode.ABORTED


def status_for(error: InterfaceError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _BY_CLASS:
            return _BY_CLASS[cls]
    return grpc.StatusCode.INTERNAL


# What gRPC itself says when the caller's own deadline passes (the host's timeouts say more).
_LOCAL_DEADLINE = "Deadline Exceeded"


def error_from_rpc(
    error: grpc.RpcError, *, tool: str | None = None, timeout_s: float | None = None
) -> TandemError:
    code: grpc.StatusCode = error.code()
    details: str = error.details() or code.name
    if code == SUBAGENT_FAILED:
        return SubagentError(details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and details == _LOCAL_DEADLINE:
        waited = f" within {timeout_s:g}s" if timeout_s else ""
        details = f"{tool or 'the call'}: no answer from the host{waited}"
    cls = _BY_CODE.get(code, InterfaceError)
    if cls is InterfaceError:
        details = f"{code.name}: {details}"
    return cls(details, tool=tool)
