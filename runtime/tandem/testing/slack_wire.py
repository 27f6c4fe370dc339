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
WORKSPACE_NAME = "Acme"
WORKSPACE_URL = "https://acme.slack.com/"
CREATED = 1764000000  # when the seeded channels were made (unix seconds)


@dataclass
class Message:
    """A message in a channel as it is now: what its message object is built from."""

    ts: str
    user: str
    text: str
    reactions: dict[str, list[str]] = field(default_factory=dict)  # name -> user ids, in order


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


def message_object(message: Message) -> JSON:
    body: JSON = {
        "type": "message",
        "user": message.user,
        "text": message.text,
        "ts": message.ts,
        "team": workspace.TEAM_ID,
    }
    reactions = [
        {"name": name, "users": list(users), "count": len(users)}
        for name, users in message.reactions.items()
        if users
    ]
    if reactions:
        body["reactions"] = reactions
    return body


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
