"""What the Messages API stand-in answers: a script of replies, one per request.

A reply is built with the class methods of `Reply` and becomes the JSON body (and HTTP
status) of one `POST /v1/messages` response, shaped as the real API shapes it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


@dataclass(frozen=True)
class ToolUse:
    """One `tool_use` block: `name` is the API name the model was offered (`plugin__tool`)."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the class methods rather than by hand."""

    content: tuple[JSON, ...] = ()
    stop_reason: str = "end_turn"
    usage: Mapping[str, int] | None = None
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    stop_details: Mapping[str, Any] | None = None
    # A reply decided from the request body, for tests whose answer depends on it.
    respond: Callable[[JSON], Reply] | None = None
    # Hold the response until this is set (or the stand-in stops): a model that hangs.
    hold: threading.Event | None = None

    @classmethod
    def text(
        cls, text: str, *, stop_reason: str = "end_turn", usage: Mapping[str, int] | None = None
    ) -> Reply:
        return cls(content=({"type": "text", "text": text},), stop_reason=stop_reason, usage=usage)

    @classmethod
    def tool_use(
        cls,
        *calls: ToolUse | tuple[str, Mapping[str, Any]],
        text: str | None = None,
        usage: Mapping[str, int] | None = None,
    ) -> Reply:
        """One or more `tool_use` blocks (several are parallel tool calls), `stop_reason`
        `tool_use`, optionally preceded by a text block."""
        blocks: list[JSON] = [{"type": "text", "text": text}] if text else []
        for call in calls:
            use = call if isinstance(call, ToolUse) else ToolUse(call[0], call[1])
            blocks.append(
                {
                    "type": "tool_use",
                    "id": use.id or new_id("toolu_"),
                    "name": use.name,
                    "input": dict(use.input),
                }
            )
        return cls(content=tuple(blocks), stop_reason="tool_use", usage=usage)

    @classmethod
    def refusal(
        cls, text: str = "", *, category: str | None = None, usage: Mapping[str, int] | None = None
    ) -> Reply:
        """The model declined: `stop_reason` `refusal`, with whatever text it had produced."""
        content = ({"type": "text", "text": text},) if text else ()
        details = {"type": "refusal", "category": category, "explanation": None}
        return cls(content=content, stop_reason="refusal", usage=usage, stop_details=details)

    @classmethod
    def error(
        cls,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An error response, e.g. `(529, "overloaded_error", "Overloaded")` or
        `(400, "invalid_request_error", "...")`. Retryable statuses carry `retry-after-ms: 1`
        by default so the client's retry does not wait (the real API sends `retry-after`)."""
        if headers is None:
            headers = {"retry-after-ms": "1"} if status in (408, 409, 429) or status >= 500 else {}
        return cls(status=status, error_type=error_type, error_message=message, headers=headers)

    @classmethod
    def overloaded(cls) -> Reply:
        return cls.error(529, "overloaded_error", "Overloaded")

    @classmethod
    def invalid_request(cls, message: str) -> Reply:
        return cls.error(400, "invalid_request_error", message)

    @classmethod
    def dynamic(cls, respond: Callable[[JSON], Reply]) -> Reply:
        """Decide the reply when the request arrives: `respond(request_body) -> Reply`."""
        return cls(respond=respond)

    @classmethod
    def stall(cls, release: threading.Event | None = None) -> Reply:
        """Hold the request until `release` is set, then answer it with the next reply of
        the script; never, if nothing releases it before the stand-in stops (timeout tests)."""
        return cls(hold=release or threading.Event())

    @property
    def is_error(self) -> bool:
        return self.status >= 400


def error_body(error_type: str, message: str, request_id: str) -> JSON:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def message_body(reply: Reply, model: str, usage: Mapping[str, int]) -> JSON:
    body: JSON = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [dict(block) for block in reply.content],
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": dict(usage),
    }
    if reply.stop_details is not None:
        body["stop_details"] = dict(reply.stop_details)
    return body
