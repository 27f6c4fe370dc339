"""What a replay answers for a recorded call: its recorded result as JSON text, or its
recorded failure raised again as the same kind of error."""

from __future__ import annotations

import json

from tandem_sdk import errors

from .recording import RecordedCall


def replayed_answer(recorded: RecordedCall) -> str:
    if not recorded.ok:
        raise _recorded_error(recorded)
    if recorded.over_cap is not None:
        raise errors.ToolError(
            f"the recorded result of {recorded.tool} was {recorded.over_cap} bytes, over the "
            "recording cap (record.max_result_bytes), so it was not kept; replay cannot "
            "answer this call",
            tool=recorded.tool,
            type="result_not_recorded",
        )
    return json.dumps(recorded.result)


def _recorded_error(recorded: RecordedCall) -> errors.TandemError:
    kind = getattr(errors, recorded.error_type or "", None)
    message = recorded.message or ""
    if isinstance(kind, type) and issubclass(kind, errors.InterfaceError):
        return kind(message, tool=recorded.tool)  # ToolUnavailable, ToolTimeout, ...
    return errors.ToolError(
        message,
        tool=recorded.tool,
        type=recorded.error_type or "Error",
        retryable=recorded.retryable,
    )
