"""The Slack Web API's wire format, for the seeded workspace of `tandem.testing.workspace`:
how a call carries its arguments and token, and the JSON Slack answers with.

Requests: the arguments come in the query string and in a form-encoded, multipart or JSON
body (`parse_body`); the token in `Authorization: Bearer` (`bearer_token`) or, except in a
JSON body, a `token` argument. A call Slack refuses (a body it cannot read, a bad argument,
a bad token) raises a `Refusal`, which carries Slack's error code.

Answers: an envelope whose `ok` says whether the call succeeded, with the method's fields
or Slack's error code (`ok_body`, `error_body`); the answers of the methods the stand-in
serves (`auth.test`, a page of `conversations.list` or `conversations.history`, with the
opaque cursor of the next page); the objects in them (a public channel, a message with its
reactions).

    ok_body(auth_test_body())         # {"ok": True, "url": "https://acme.slack.com/", ...}
    error_body("channel_not_found")   # {"ok": False, "error": "channel_not_found"}

`tandem.testing.slack_api` is the stand-in that serves them over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from tandem.testing import workspace

JSON = dict[str, Any]
BOT_ID = "B0TANDEM001"
APP_ID = "A0TANDEM001"
WORKSPACE_NAME = "Acme"
WORKSPACE_URL = "https://acme.slack.com/"
CREATED = 1764000000  # when the seeded channels were made (unix seconds)
# Slack's limits on a message's blocks, as chat.postMessage and chat.update check them.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_ACTION_ELEMENTS = 25
MAX_ACTION_ID = 255
MAX_BUTTON_VALUE = 2000
BLOCK_TYPES = {"section", "actions", "context", "divider", "header", "image", "rich_text"}


@dataclass
class Message:
    """A message in a channel as it is now: what its message object is built from."""

    ts: str
    user: str
    text: str
    reactions: dict[str, list[str]] = field(default_factory=dict)  # name -> user ids, in order
    blocks: list[JSON] | None = None  # a message the bot posted with Block Kit blocks
    edited: str | None = None  # the ts of its last chat.update


# -- requests ----------------------------------------------------------------------------


class Refusal(Exception):
    """A call Slack refuses: its error code (`error_body` makes the answer), any fields that
    say more, and `problem`, why the request was malformed, if it was."""

    def __init__(self, error: str, problem: str | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.problem = problem
        self.extra = extra


def parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    """The arguments in a POST body, and the token when the body may carry one (a JSON body
    may not: Slack reads its token from the Authorization header only)."""
    if not body:
        return {}, None
    kind, _, options = content_type.partition(";")
    kind = kind.strip().lower()
    charset = _charset(options)
    if kind == "application/json":
        try:
            data = json.loads(body.decode(charset))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise Refusal("invalid_json", f"body is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise Refusal("json_not_object", "JSON body is not an object")
        return data, None
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode(charset), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as error:
            raise Refusal("invalid_form_data", f"form body does not parse: {error}") from None
        form: dict[str, Any] = dict(pairs)
        return form, form.get("token")
    if kind == "multipart/form-data":
        form = _multipart(content_type, body)
        return form, form.get("token")
    if not kind:
        raise Refusal("missing_post_type", "a body without a Content-Type")
    raise Refusal("invalid_post_type", f"Content-Type {kind!r}")


def _charset(options: str) -> str:
    for option in options.split(";"):
        key, _, value = option.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in {"utf-8", "iso-8859-1"}:
                raise Refusal("invalid_charset", f"charset {charset!r}")
            return charset
    return "utf-8"


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise Refusal("invalid_form_data", "multipart body does not parse")
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and isinstance(part, EmailMessage):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                form[name] = payload.decode("utf-8", "replace")
    return form


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token in an `Authorization: Bearer` header, if there is one."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def message_content(params: Mapping[str, Any]) -> tuple[str, list[JSON] | None]:
    """A message's `text` and `blocks` (a JSON array, as a string in a form body), checked
    as Slack checks them."""
    text = str(params.get("text") or "")
    raw = params.get("blocks")
    if raw in (None, ""):
        return text, None
    try:
        blocks = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise Refusal("invalid_blocks_format", "blocks is not JSON") from None
    if not isinstance(blocks, list):
        raise Refusal("invalid_blocks_format", "blocks is not an array")
    problems = [p for i, block in enumerate(blocks) for p in _block_problems(i, block)]
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    if problems:
        messages = [f"[ERROR] {problem}" for problem in problems]
        raise Refusal(
            "invalid_blocks",
            "; ".join(problems),
            errors=problems,
            response_metadata={"messages": messages},
        )
    return text, blocks


def _block_problems(index: int, block: Any) -> list[str]:
    where = f"[json-pointer:/blocks/{index}"
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return [f"unsupported type {where}/type]"]
    problems = []
    if block["type"] == "section":
        text = (block.get("text") or {}).get("text", "")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_SECTION_TEXT:
            problems.append(f"must be 1 to {MAX_SECTION_TEXT} characters {where}/text/text]")
    if block["type"] == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTION_ELEMENTS:
            return [f"must have 1 to {MAX_ACTION_ELEMENTS} elements {where}/elements]"]
        for n, element in enumerate(elements):
            at = f"{where}/elements/{n}"
            if not isinstance(element, dict) or element.get("type") != "button":
                problems.append(f"unsupported element type {at}/type]")
                continue
            if not 1 <= len(str(element.get("action_id", "x"))) <= MAX_ACTION_ID:
                problems.append(f"must be 1 to {MAX_ACTION_ID} characters {at}/action_id]")
            if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE:
                problems.append(f"must be at most {MAX_BUTTON_VALUE} characters {at}/value]")
            if (element.get("text") or {}).get("type") != "plain_text":
                problems.append(f"must be a plain_text object {at}/text]")
    return problems


# -- answers -----------------------------------------------------------------------------


def ok_body(answer: JSON) -> JSON:
    """A successful call's answer: `ok` and the method's fields."""
    return {"ok": True, **answer}


def error_body(error: str, **extra: Any) -> JSON:
    """A failed call's answer: Slack's error code, and any fields that say more."""
    return {"ok": False, "error": error, **extra}


def missing_field(name: str) -> JSON:
    """What Slack adds to `invalid_arguments` when a required argument is missing."""
    return {"response_metadata": {"messages": [f"[ERROR] missing required field: {name}"]}}


# -- the methods' answers ----------------------------------------------------------------


def auth_test_body() -> JSON:
    """`auth.test` for the seeded bot's token."""
    return {
        "url": WORKSPACE_URL,
        "team": WORKSPACE_NAME,
        "user": workspace.BOT.name,
        "team_id": workspace.TEAM_ID,
        "user_id": workspace.BOT.id,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


def channels_page(channels: Iterable[workspace.SeedChannel], following: str) -> JSON:
    """A page of `conversations.list`; `following` is the id the next page starts at ("" on
    the last page)."""
    return {
        "channels": [channel_object(channel) for channel in channels],
        "response_metadata": {"next_cursor": cursor("team", following)},
    }


def history_page(messages: Iterable[Message], following: str) -> JSON:
    """A page of `conversations.history`, newest first; `following` is the key of the
    message the next page starts at ("" on the last page)."""
    return {
        "messages": [message_object(message) for message in messages],
        "has_more": bool(following),
        "pin_count": 0,
        "channel_actions_ts": None,
        "channel_actions_count": 0,
        "response_metadata": {"next_cursor": cursor("next_ts", following)},
    }


# -- cursors -----------------------------------------------------------------------------


def cursor(kind: str, key: str) -> str:
    """The opaque `next_cursor` for the page that starts at `key` ("" when there is none)."""
    return base64.b64encode(f"{kind}:{key}".encode()).decode() if key else ""


def cursor_key(value: str) -> tuple[str, str]:
    """What a cursor made by `cursor` names, (kind, key); ("", "") if it was not made so."""
    try:
        kind, _, key = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return kind, key


# -- the objects -------------------------------------------------------------------------


def posted_body(channel: str, message: Message) -> JSON:
    """`chat.postMessage`'s answer: the channel's ID, the new ts, the message as stored."""
    return {"channel": channel, "ts": message.ts, "message": message_object(message)}


def updated_body(channel: str, message: Message) -> JSON:
    """`chat.update`'s answer: the channel, ts and text, and the message as it is now."""
    body = message_object(message)
    body.pop("ts", None)  # Slack leaves the ts out of the updated message object
    return {"channel": channel, "ts": message.ts, "text": message.text, "message": body}


def message_object(message: Message) -> JSON:
    body: JSON = {
        "type": "message",
        "user": message.user,
        "text": message.text,
        "ts": message.ts,
        "team": workspace.TEAM_ID,
    }
    if message.user == workspace.BOT.id:  # what Slack adds to a bot's own message
        body |= {"bot_id": BOT_ID, "app_id": APP_ID, "bot_profile": bot_profile()}
    if message.blocks is not None:
        body["blocks"] = message.blocks
    if message.edited is not None:
        body["edited"] = {"user": message.user, "ts": message.edited}
    reactions = [
        {"name": name, "users": list(users), "count": len(users)}
        for name, users in message.reactions.items()
        if users
    ]
    if reactions:
        body["reactions"] = reactions
    return body


def bot_profile() -> JSON:
    return {
        "id": BOT_ID,
        "app_id": APP_ID,
        "name": workspace.BOT.name,
        "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},
        "deleted": False,
        "updated": CREATED,
        "team_id": workspace.TEAM_ID,
    }


def channel_object(channel: workspace.SeedChannel) -> JSON:
    creator = workspace.USERS[0].id
    return {
        "id": channel.id,
        "name": channel.name,
        "is_channel": True,
        "is_group": False,
        "is_im": False,
        "is_mpim": False,
        "is_private": False,
        "created": CREATED,
        "is_archived": False,
        "is_general": False,
        "unlinked": 0,
        "name_normalized": channel.name,
        "is_shared": False,
        "is_org_shared": False,
        "is_pending_ext_shared": False,
        "pending_shared": [],
        "context_team_id": workspace.TEAM_ID,
        "updated": CREATED * 1000,
        "parent_conversation": None,
        "creator": creator,
        "is_ext_shared": False,
        "shared_team_ids": [workspace.TEAM_ID],
        "pending_connected_team_ids": [],
        "is_member": True,
        "topic": {"value": channel.topic, "creator": creator, "last_set": CREATED},
        "purpose": {"value": "", "creator": "", "last_set": 0},
        "previous_names": [],
        "num_members": len(workspace.USERS),
    }
