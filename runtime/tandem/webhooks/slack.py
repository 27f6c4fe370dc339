"""`/hooks/slack/interactions`: Slack's button clicks on held calls (the Slack app's
Interactivity Request URL). Its rules:

    SLACK_SIGNING_SECRET unset   503 (logged; Slack shows the clicker an error)
    not a POST                   405
    body over limit / too slow   413 / 408 (the listener's BodyReader, as for webhooks)
    no or bad signature          401 (logged with the sender's address; nothing decided)
    timestamp over 5 min off     401 (a captured click sent again later)
    no `payload` JSON            400
    not a block_actions click    200, ignored
    a click                      200 at once; the call is decided and its message updated
                                 (only a click on the message posted for that call), by
                                 the daemon that posted it: one sharing the store passes
                                 the click on to it

Slack signs each request: `X-Slack-Request-Timestamp` is when it was sent (unix seconds)
and `X-Slack-Signature` is `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{raw body}`,
keyed with the app's signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tandem.slack_approvals.notifier import Click, SlackApprovals

if TYPE_CHECKING:
    from .listener import BodyReader

log = logging.getLogger(__name__)

INTERACTIONS_PATH = "/hooks/slack/interactions"
SIGNING_SECRET_ENV = "SLACK_SIGNING_SECRET"  # noqa: S105 - a variable's name
MAX_SKEW_S = 300  # Slack's advice: refuse a request more than five minutes off


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> str | None:
    """None when the request is Slack's, signed with `secret` within the last 5 minutes;
    else what is wrong. `headers` has lower-case names."""
    timestamp = headers.get("x-slack-request-timestamp", "").strip()
    given = headers.get("x-slack-signature", "").strip()
    if not timestamp or not given:
        return "no X-Slack-Signature or X-Slack-Request-Timestamp"
    # ASCII digits only (int() takes '²' and the like) and a plausible length (int() of
    # thousands of digits is refused, and a 500 is no answer to a bad request).
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return f"X-Slack-Request-Timestamp {timestamp[:20]!r} is not a unix time"
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > MAX_SKEW_S:
        return f"timestamp is {skew:.0f}s off (more than {MAX_SKEW_S}s): refused as a replay"
    expected = slack_signature(secret, timestamp, body)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return "signature does not match"
    return None


def interactions_endpoint(
    reader: BodyReader,
    approvals: SlackApprovals,
    environ: Mapping[str, str] = os.environ,
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        secret = environ.get(SIGNING_SECRET_ENV, "")
        if not secret:
            log.warning(
                "%s: refused a Slack interaction: %s is not set in the daemon's environment"
                " (the Slack app's Signing Secret, under Basic Information)",
                INTERACTIONS_PATH,
                SIGNING_SECRET_ENV,
            )
            return JSONResponse({"error": f"{SIGNING_SECRET_ENV} is not set"}, status_code=503)
        if request.method != "POST":
            return JSONResponse(
                {"error": "Slack interactions are POSTs"},
                status_code=405,
                headers={"Allow": "POST"},
            )
        body = await reader.read(request)
        if isinstance(body, Response):
            return body
        headers = {k.lower(): v for k, v in request.headers.items()}
        problem = signature_problem(secret, headers, body)
        if problem is not None:
            remote = f"{request.client.host}" if request.client else "?"
            log.warning("%s: refused a request from %s: %s", INTERACTIONS_PATH, remote, problem)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        payload = _payload(body)
        if payload is None:
            return JSONResponse({"error": "expected a form field `payload` with JSON"}, 400)
        if payload.get("type") != "block_actions" or not payload.get("actions"):
            return Response(status_code=200)  # another kind of interaction: not ours
        approvals.click(_click(payload))
        return Response(status_code=200)

    return endpoint


def _payload(body: bytes) -> dict[str, Any] | None:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError):
        return None
    return payload if isinstance(payload, dict) else None


def _click(payload: dict[str, Any]) -> Click:
    """The first action of a block_actions payload, and where its message is."""
    action = _mapping(payload["actions"][0]) if isinstance(payload["actions"], list) else {}
    user = _mapping(payload.get("user"))
    container = _mapping(payload.get("container"))
    message = _mapping(payload.get("message"))
    channel = _mapping(payload.get("channel")).get("id") or container.get("channel_id", "")
    blocks = message.get("blocks")
    return Click(
        action_id=str(action.get("action_id", "")),
        value=str(action.get("value", "")),
        user_id=str(user.get("id", "")),
        user_name=str(user.get("username") or user.get("name") or ""),
        channel=str(channel),
        message_ts=str(container.get("message_ts") or message.get("ts", "")),
        message_blocks=[b for b in blocks if isinstance(b, dict)]
        if isinstance(blocks, list)
        else [],
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
