"""Send a Block Kit button click the way Slack does, to an app's Interactivity Request URL.

Slack POSTs `application/x-www-form-urlencoded` with one field, `payload`, holding the
interaction as JSON (`block_actions`: who clicked, the button's `action_id` and `value`,
the channel, the message as it is, a `response_url`), signed with the app's signing
secret: `X-Slack-Request-Timestamp` is the unix time it was sent, and `X-Slack-Signature`
is `v0=` and the hex HMAC-SHA256, keyed with the secret, of `v0:{timestamp}:{raw body}`.

    payload = click(message, "C0ENG00001", "approve", user=workspace.USERS[0])
    result = send_interaction(url, payload, signing_secret=SECRET)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from tandem.testing import workspace
from tandem.testing.slack_wire import APP_ID, JSON, Message, message_object

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
TEAM_DOMAIN = "acme"


@dataclass(frozen=True)
class InteractionResult:
    status: int
    body: str


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """`X-Slack-Signature` for a body sent at `timestamp`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def click(
    message: Message,
    channel: str,
    action_id: str,
    *,
    user: workspace.SeedUser,
) -> JSON:
    """The `block_actions` payload of `user` clicking the button `action_id` of `message`
    (a message the stand-in holds) in `channel`."""
    button = _button(message, action_id)
    channel_name = next((c.name for c in workspace.CHANNELS if c.id == channel), "")
    now = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {
            "id": user.id,
            "username": user.name,
            "name": user.name,
            "team_id": workspace.TEAM_ID,
        },
        "api_app_id": APP_ID,
        "token": "VerificationTokenUnused0",  # the deprecated verification token
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**13)}."
        + secrets.token_hex(16),
        "team": {"id": workspace.TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name},
        "message": message_object(message),
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{workspace.TEAM_ID}/1/"
        + secrets.token_hex(12),
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": button["block_id"],
                "text": button.get("text", {"type": "plain_text", "text": "", "emoji": True}),
                "value": button.get("value", ""),
                **({"style": button["style"]} if "style" in button else {}),
                "type": "button",
                "action_ts": now,
            }
        ],
    }


def send_interaction(
    url: str,
    payload: Any,
    *,
    signing_secret: str,
    timestamp: float | None = None,
    signature_header: str | None = None,
    timeout: float = 30.0,
) -> InteractionResult:
    """POST one interaction as Slack does; `timestamp` (unix seconds) dates it otherwise
    than now, `signature_header` replaces the signature (a forged one)."""
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    sent_at = str(int(time.time() if timestamp is None else timestamp))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": USER_AGENT,
        "X-Slack-Request-Timestamp": sent_at,
        "X-Slack-Signature": signature_header or signature(signing_secret, sent_at, body),
    }
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return InteractionResult(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return InteractionResult(error.code, error.read().decode())


def _button(message: Message, action_id: str) -> JSON:
    """The button `action_id` in the message's actions blocks, with its block's id (Slack
    makes one up for a block posted without one)."""
    for index, block in enumerate(message.blocks or []):
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id") or f"b{index}"}
    raise LookupError(f"message {message.ts} has no button {action_id!r}")
