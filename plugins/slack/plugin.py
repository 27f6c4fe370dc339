"""Slack on the official slack_sdk: read a channel's recent messages, react to one, post
a message and update it (the host posts held approvals with these two).

The process sees SLACK_BOT_TOKEN (the app's bot token, xoxb-...) and SLACK_API_URL (the
Web API root; Slack's own unless set). A Slack failure is a ToolError whose `type` is
Slack's own error code (channel_not_found, already_reacted, invalid_auth, ...), so a
workflow can match on it. A rate-limited call (HTTP 429) is retried after the
`Retry-After` Slack asks for, but only while that wait fits in the time the host still
gives the call; otherwise it fails at once as `ratelimited`, retryable.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tandem_sdk import RunContext, tool
from tandem_sdk.errors import ToolError

if TYPE_CHECKING:
    from slack_sdk import WebClient

SLACK_API_URL = "https://slack.com/api/"
HTTP_TIMEOUT_S = 15
PAGE_SIZE = 200
MAX_MESSAGES = 200
# A retry after a rate limit needs room for the request itself once the wait is over.
RETRY_MARGIN_S = 1.0
# How long a call may spend waiting out rate limits when the host gave no deadline.
UNBOUNDED_BUDGET_S = 30.0
RETRYABLE = {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
ERROR_CODE = re.compile(r"^[a-z0-9_]+$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
# Slack mrkdwn wraps links as <url> or <url|label>; <@U..>, <#C..|name> and <!here> are not links.
LINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^<>|\s]+)(?:\|[^<>]*)?>")

_REFUSED = (
    "Slack refused the token in SLACK_BOT_TOKEN ({code}): set it to the current bot token"
    " (xoxb-...) of the app installed in this workspace and restart the daemon."
)
# What each Slack error code means for the caller, and what to do about it.
HINTS = {
    "not_authed": "Slack received no token: set SLACK_BOT_TOKEN to the app's bot token.",
    "invalid_auth": _REFUSED,
    "token_revoked": _REFUSED,
    "token_expired": _REFUSED,
    "account_inactive": _REFUSED,
    "missing_scope": "the Slack app lacks the scope {needed} that {method} needs: add it in"
    " the app's OAuth settings and reinstall the app.",
    "channel_not_found": "Slack has no channel {channel} that the bot can see: check the"
    " name or ID, and invite the bot to private channels.",
    "not_in_channel": "the bot is not a member of {channel}: invite it there (/invite @bot).",
    "is_archived": "channel {channel} is archived.",
    "message_not_found": "{channel} has no message with ts {timestamp}: pass the ts of a"
    " message that get_messages or post_message returned.",
    "bad_timestamp": "{timestamp!r} is not a message ts: pass the ts of a message that"
    " get_messages returned, like '1764460800.000100'.",
    "already_reacted": "the bot has already reacted with :{name}: to message {timestamp} in"
    " {channel}; the reaction is there, nothing to do.",
    "invalid_name": "{name!r} is not an emoji name this workspace knows: pass a name without"
    " colons, like 'white_check_mark'.",
    "too_many_emoji": "message {timestamp} in {channel} has as many kinds of reaction as"
    " Slack allows.",
    "too_many_reactions": "message {timestamp} in {channel} has as many reactions as Slack allows.",
    "cant_update_message": "the bot may only update its own messages; {timestamp} in {channel} is"
    " not one.",
    "edit_window_closed": "message {timestamp} in {channel} can no longer be edited.",
    "invalid_blocks": "Slack refused the blocks: check them against the Block Kit reference.",
    "no_text": "the message has no text: pass `text` (and `blocks` if wanted).",
}

_channel_ids: dict[str, str] = {}  # channel name -> id, as conversations.list gave it
_channel_ids_lock = threading.Lock()


@tool(read_only=True)
def get_messages(channel: str, ctx: RunContext, limit: int = 20) -> list[dict[str, Any]]:
    """Read the most recent messages of a Slack channel, newest first.

    Each message is {"ts", "user", "text", "reactions": [names of the emoji reactions it
    has], "links": [the URLs in its text, in order]}.

    Args:
        channel: the channel's name ("eng" or "#eng") or its ID ("C0123456789").
        limit: how many messages at most, from 1 to 200.
    """
    if not 1 <= limit <= MAX_MESSAGES:
        raise ToolError(
            f"limit must be from 1 to {MAX_MESSAGES}, not {limit}.", type="invalid_limit"
        )
    channel_id = _channel_id(channel, ctx)
    messages: list[dict[str, Any]] = []
    cursor = ""
    while len(messages) < limit:
        params: dict[str, Any] = {"channel": channel_id, "limit": limit - len(messages)}
        if cursor:
            params["cursor"] = cursor
        page = _call_in(channel, "conversations.history", ctx, params)
        messages.extend(page.get("messages") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
        if not page.get("has_more") or not cursor:
            break
    return [_summary(message) for message in messages[:limit]]


@tool(destructive=False, idempotent=True, dry_run_result={"ok": True, "dry_run": True})
def add_reaction(channel: str, ts: str, name: str, ctx: RunContext) -> dict[str, Any]:
    """Add an emoji reaction from the bot to a Slack message.

    If the bot has already reacted with that emoji, this fails with type `already_reacted`:
    the reaction is there, so a caller can count that as done.

    Args:
        channel: the channel's name ("eng" or "#eng") or its ID ("C0123456789").
        ts: the message's timestamp, as get_messages returned it.
        name: the emoji's name, like "white_check_mark" (surrounding colons are dropped).
    """
    emoji = name.strip().strip(":")
    if not emoji:
        raise ToolError(
            f"{name!r} is not an emoji name: pass one like 'white_check_mark'.",
            type="invalid_name",
        )
    channel_id = _channel_id(channel, ctx)
    params = {"channel": channel_id, "timestamp": ts, "name": emoji}
    _call_in(channel, "reactions.add", ctx, params)
    return {"ok": True, "channel": channel_id, "ts": ts, "name": emoji}


@tool(destructive=False, idempotent=False, dry_run_result={"ok": True, "dry_run": True})
def post_message(
    channel: str, text: str, ctx: RunContext, blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Post a message to a Slack channel as the bot (chat.postMessage).

    Returns {"ok", "channel": the channel's ID, "ts": the new message's ts}; pass both to
    update_message to change it later.

    Args:
        channel: the channel's name ("eng" or "#eng") or its ID ("C0123456789").
        text: the message in Slack mrkdwn; with `blocks`, the notification's fallback text.
        blocks: Block Kit blocks to show instead of `text`, as Slack takes them.
    """
    params: dict[str, Any] = {"channel": _channel_id(channel, ctx), "text": text}
    if blocks is not None:
        params["blocks"] = json.dumps(blocks)
    answer = _call_in(channel, "chat.postMessage", ctx, params)
    return {"ok": True, "channel": answer.get("channel", ""), "ts": answer.get("ts", "")}


@tool(destructive=True, idempotent=True, dry_run_result={"ok": True, "dry_run": True})
def update_message(
    channel: str,
    ts: str,
    text: str,
    ctx: RunContext,
    blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Replace the text and blocks of a message the bot posted (chat.update).

    Args:
        channel: the channel's ID, as post_message returned it.
        ts: the message's ts, as post_message returned it.
        text: the new text (with `blocks`, the fallback text).
        blocks: the new blocks; [] removes them all, omitted keeps the old ones.
    """
    params: dict[str, Any] = {"channel": _channel_id(channel, ctx), "ts": ts, "text": text}
    if blocks is not None:
        params["blocks"] = json.dumps(blocks)
    answer = _call_in(channel, "chat.update", ctx, params)
    return {"ok": True, "channel": answer.get("channel", ""), "ts": answer.get("ts", "")}


# -- the Slack Web API -------------------------------------------------------------------


def _client() -> WebClient:
    token = os.environ.get("SLACK_BOT_TOKEN", "").strip()
    if not token:
        raise ToolError(
            "SLACK_BOT_TOKEN is not set in the daemon's environment: set it to the Slack"
            " app's bot token (xoxb-...) and restart the daemon.",
            type="not_authed",
        )
    return _web_client(token, os.environ.get("SLACK_API_URL", "").strip() or SLACK_API_URL)


@functools.cache
def _web_client(token: str, base_url: str) -> WebClient:
    # Imported on first use: every daemon starts every built-in plugin, most never call it.
    from slack_sdk import WebClient

    return WebClient(token=token, base_url=base_url, timeout=HTTP_TIMEOUT_S)


def _call(
    method: str,
    ctx: RunContext,
    params: Mapping[str, Any],
    about: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One Web API call. The one place where slack_sdk's failures become ToolErrors, whose
    messages name things as `about` does (the channel as the caller gave it)."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    client = _client()
    left = ctx.time_left()
    deadline = time.monotonic() + (UNBOUNDED_BUDGET_S if left is None else left)
    while True:
        try:
            return dict(client.api_call(method, params=dict(params)).data)
        except SlackApiError as error:
            answer = error.response
            if answer.status_code == 429:
                _wait_out(method, answer.headers, deadline)
                continue
            data = answer.data if isinstance(answer.data, dict) else {}
            facts = {**params, **(about or {})}
            raise _api_error(method, answer.status_code, data, facts) from None
        except (SlackClientError, OSError) as error:
            raise ToolError(
                f"could not reach the Slack API at {client.base_url} for {method}: {error}",
                type="connection_error",
                retryable=True,
            ) from None


def _call_in(
    channel: str, method: str, ctx: RunContext, params: Mapping[str, Any]
) -> dict[str, Any]:
    """`_call` about a channel the caller named; a name whose id has gone is looked up again
    next time."""
    given, found = channel.strip(), str(params["channel"])
    label = given if given == found else f"{given} ({found})"
    try:
        return _call(method, ctx, params, {"channel": label})
    except ToolError as error:
        if error.type == "channel_not_found":
            with _channel_ids_lock:
                _channel_ids.pop(_channel_name(channel), None)
        raise


def _wait_out(method: str, headers: Mapping[str, Any], deadline: float) -> None:
    """Sleep for the Retry-After of a 429 if the call has time for it, else fail now."""
    wait = _retry_after(headers)
    room = deadline - time.monotonic() - RETRY_MARGIN_S
    if wait > room:
        at = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
        raise ToolError(
            f"Slack is rate limiting {method} and asks to wait {wait:g} s, longer than this"
            f" call can wait ({max(room, 0):.1f} s): retry after {wait:g} s (at {at}).",
            type="ratelimited",
            retryable=True,
        )
    time.sleep(wait)


def _retry_after(headers: Mapping[str, Any]) -> float:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            text = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(float(text), 0.0)
            except (TypeError, ValueError):
                break
    return 1.0  # Slack always sends Retry-After with a 429; this is a guard, not a policy


def _api_error(
    method: str, status: int, data: Mapping[str, Any], facts: Mapping[str, Any]
) -> ToolError:
    error = str(data.get("error") or "")
    # slack_sdk puts its own sentence in `error` for a body that is not JSON (a proxy's page).
    code = error if ERROR_CODE.match(error) else f"http_{status}"
    hint = HINTS.get(code)
    if hint is None:
        notes = (data.get("response_metadata") or {}).get("messages") or []
        detail = f" ({'; '.join(map(str, notes))})" if notes else ""
        message = f"Slack's {method} failed with {code!r}{detail}."
    else:
        known = {"method": method, "code": code, "needed": data.get("needed", "?"), **facts}
        known.setdefault("timestamp", known.get("ts", "?"))  # chat.update names it `ts`
        message = hint.format_map(_Facts(known))
    return ToolError(message, type=code, retryable=code in RETRYABLE or status >= 500)


class _Facts(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


# -- channels and messages ---------------------------------------------------------------


def _channel_name(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


def _channel_id(channel: str, ctx: RunContext) -> str:
    """The id of a channel given by id or by name (looked up with conversations.list)."""
    if CHANNEL_ID.match(channel.strip()):
        return channel.strip()
    name = _channel_name(channel)
    if not name:
        raise ToolError(
            "no channel given: pass a name like 'eng' or an ID like 'C0123456789'.",
            type="channel_not_found",
        )
    with _channel_ids_lock:
        if name in _channel_ids:
            return _channel_ids[name]
    cursor = ""
    while True:
        params: dict[str, Any] = {"exclude_archived": "true", "limit": PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        page = _call("conversations.list", ctx, params)
        for found in page.get("channels") or []:
            if name in (found.get("name"), found.get("name_normalized")):
                with _channel_ids_lock:
                    _channel_ids[name] = found["id"]
                return str(found["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            raise ToolError(
                f"Slack has no public channel named #{name}: check the name, or pass the"
                " channel's ID (C...) for a private channel.",
                type="channel_not_found",
            )


def _summary(message: Mapping[str, Any]) -> dict[str, Any]:
    text = str(message.get("text") or "")
    return {
        "ts": message.get("ts", ""),
        "user": message.get("user", ""),
        "text": text,
        "reactions": [r["name"] for r in message.get("reactions") or [] if r.get("name")],
        "links": [_unescape(url) for url in LINK.findall(text)],
    }


def _unescape(text: str) -> str:
    """Slack escapes exactly these three in message text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
