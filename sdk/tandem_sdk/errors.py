"""The one exception tree of Tandem, shared by the SDK and the host.

    TandemError
    ├── ProtocolMismatch          SDK and host speak different protocol versions
    ├── InterfaceError            ToolHost refused a call (a gRPC status; fields: run_id, tool)
    │   ├── Unauthenticated       bad or ended run token            UNAUTHENTICATED
    │   ├── ToolNotInScope        tool not listed by the workflow   PERMISSION_DENIED
    │   ├── InvalidArguments      arguments fail the tool's schema  INVALID_ARGUMENT
    │   ├── NotFound              unknown tool or virtual file      NOT_FOUND
    │   ├── LimitExceeded         a run limit was hit               RESOURCE_EXHAUSTED
    │   ├── ToolUnavailable       the plugin is down (retryable)    UNAVAILABLE
    │   └── ToolTimeout           the plugin did not answer in time DEADLINE_EXCEEDED
    ├── ToolError                 the tool ran and failed: a result, not a transport error
    │   └── GuardRefused          a guard (guards.py) refused the call: it never ran
    ├── SubagentError             the subagent could not give a valid answer     ABORTED
    ├── DefinitionError           a plugin or workflow is malformed (found at load)
    └── Escalate                  a script hands its run to the model (raised on purpose)

The mapping between InterfaceError classes and gRPC status codes lives in
`tandem_sdk._status` and nowhere else.
"""

from __future__ import annotations

import json
from typing import Any


class TandemError(Exception):
    """Base of every error Tandem raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolMismatch(TandemError):
    def __init__(self, sdk_version: int, host_version: int) -> None:
        super().__init__(
            f"tandem_sdk speaks protocol v{sdk_version} but the host speaks v{host_version}: "
            "install the SDK version that matches the daemon"
        )
        self.sdk_version = sdk_version
        self.host_version = host_version


class InterfaceError(TandemError):
    """A ToolHost call that the host refused."""

    def __init__(self, message: str, *, tool: str | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool
        self.run_id = run_id


class Unauthenticated(InterfaceError):
    pass


class ToolNotInScope(InterfaceError):
    pass


class InvalidArguments(InterfaceError):
    pass


class NotFound(InterfaceError):
    pass


class LimitExceeded(InterfaceError):
    pass


class ToolUnavailable(InterfaceError):
    retryable = True


class ToolTimeout(InterfaceError):
    retryable = True


class ToolError(TandemError):
    """The tool ran and failed. `type` is the exception class name the tool raised, or the
    `type` a plugin gave when it raised ToolError itself (`ToolError("...",
    type="already_reacted")`: a code callers can match on)."""

    def __init__(
        self, message: str, *, tool: str = "", type: str = "Error", retryable: bool = False
    ) -> None:
        super().__init__(f"{tool}: {type}: {message}" if tool else f"{type}: {message}")
        self.tool = tool
        self.type = type
        self.retryable = retryable
        self.reason = message


class GuardRefused(ToolError):
    """A guard of the workflow (guards.py) refused the call: the tool never ran. The
    reason names the guard and holds its answer, or why it failed (a guard that raises,
    times out or answers something else than a string or None refuses)."""

    TYPE = "guard_refused"

    def __init__(self, message: str, *, tool: str = "") -> None:
        super().__init__(message, tool=tool, type=self.TYPE)


class SubagentError(TandemError):
    """The subagent could not answer: the model refused, the API failed, or its answer did
    not match the requested schema even when asked again."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class DefinitionError(TandemError):
    """A plugin function or a workflow that cannot be loaded; `where` names it."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.reason = message


class Escalate(TandemError):
    """Raised by a script that meets a case it was not written for: the host ends the
    script's part and the same run goes on with the LLM coordinator, told `reason`,
    `context` (any JSON value) and the calls the script made. `subagent.take_over(...)`
    raises it too."""

    def __init__(self, reason: str, context: Any = None) -> None:
        try:  # here, where the script raises it, rather than when the run ends
            json.dumps(context)
        except (TypeError, ValueError) as error:
            raise TypeError(f"Escalate's context is not JSON-serialisable: {error}") from None
        super().__init__(reason)
        self.reason = reason
        self.context = context
