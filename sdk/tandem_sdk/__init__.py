"""tandem_sdk: what workflow scripts and plugins import. It never imports the host."""

from .client import RunInfo, SubagentResult, ToolHostClient, ToolInfo
from .errors import (
    DefinitionError,
    Escalate,
    GuardRefused,
    InterfaceError,
    InvalidArguments,
    LimitExceeded,
    NotFound,
    ProtocolMismatch,
    SubagentError,
    TandemError,
    ToolError,
    ToolNotInScope,
    ToolTimeout,
    ToolUnavailable,
    Unauthenticated,
)
from .plugin import RunContext, tool
from .protocol import PROTOCOL_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "DefinitionError",
    "Escalate",
    "GuardRefused",
    "InterfaceError",
    "InvalidArguments",
    "LimitExceeded",
    "NotFound",
    "ProtocolMismatch",
    "RunContext",
    "RunInfo",
    "SubagentError",
    "SubagentResult",
    "TandemError",
    "ToolError",
    "ToolHostClient",
    "ToolInfo",
    "ToolNotInScope",
    "ToolTimeout",
    "ToolUnavailable",
    "Unauthenticated",
    "tool",
]
