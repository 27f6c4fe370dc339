"""A local stand-in for the Slack Web API, for tests and demos that must not touch the network.

It is a real HTTP server on 127.0.0.1 (starlette under uvicorn) serving the methods the
`slack` plugin calls, `auth.test`, `conversations.list`, `conversations.history`,
`reactions.add`, `chat.postMessage` and `chat.update`, over the seeded workspace of
`tandem.testing.workspace`. It answers as Slack does: HTTP 200 with `{"ok": false,
"error": "<code>"}` for API errors, HTTP 429 with `Retry-After` when rate limited,
form-encoded or JSON request bodies, the token from `Authorization: Bearer` or a `token`
form field. Point the official `slack_sdk` client (or
a daemon) at it with `SLACK_API_URL`:

    with SlackStandIn() as slack:
        client = WebClient(token=slack.token, base_url=slack.base_url)
        client.reactions_add(channel="C0ENG00001", timestamp="1764460800.000100", name="eyes")
        assert slack.reactions_added == [("C0ENG00001", "1764460800.000100", "eyes")]

`calls` records every request, `posted` and `updated` every message the bot posted or
changed (`message(channel, ts)` is one as it is now); `problems` every request refused as
malformed (a missing argument, a body that does not parse, a method it does not serve), so
a test can assert that it is empty. Each instance starts from a fresh copy of the seed;
`reset()` reseeds.

This module is the stand-in's behaviour: the workspace's state, credentials, rate limits and
what each method does. The wire format it speaks (reading a request's arguments and token,
Slack's objects and answer bodies) is `tandem.testing.slack_wire`, which also defines the
workspace constants re-exported here (`BOT_ID`, `WORKSPACE_NAME`, `WORKSPACE_URL`, `CREATED`).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tandem.testing import workspace
from tandem.testing.http_server import ServedApp, ServedStandIn
from tandem.testing.slack_wire import (
    BOT_ID,
    CREATED,
    JSON,
    WORKSPACE_NAME,
    WORKSPACE_URL,
    Message,
    Refusal,
    auth_test_body,
    bearer_token,
    channels_page,
    cursor_key,
    error_body,
    history_page,
    message_content,
    missing_field,
    ok_body,
    parse_body,
    posted_body,
    updated_body,
)

__all__ = [
    "BOT_ID",
    "CHANNEL_TYPES",
    "CREATED",
    "DEFAULT_TOKEN",
    "EMOJI_PATTERN",
    "HISTORY_MAX",
    "JSON",
    "LIST_MAX",
    "TS_PATTERN",
    "WORKSPACE_NAME",
    "WORKSPACE_URL",
    "AddedReaction",
    "ChangedMessage",
    "RecordedCall",
    "SlackStandIn",
]

DEFAULT_TOKEN = "xoxb-0000000001-0000000002-tandemstandintoken"  # noqa: S105 - a fake
HISTORY_MAX = 999  # Slack's largest page for conversations.history
LIST_MAX = 1000  # ... and for conversations.list
CHANNEL_TYPES = {"public_channel", "private_channel", "mpim", "im"}
TS_PATTERN = re.compile(r"^\d{1,12}\.\d{1,6}$")
EMOJI_PATTERN = re.compile(r"^[a-z0-9_+'-]{1,100}(::skin-tone-[2-6])?$")


@dataclass(frozen=True)
class RecordedCall:
    """One request as the stand-in received it, and what it answered (`ok` or an error code)."""

    method: str
    params: Mapping[str, Any]  # query and body arguments, without the token
    token: str | None
    http_method: str
    outcome: str


class ChangedMessage(NamedTuple):
    """A message the bot posted (chat.postMessage) or updated (chat.update), as it was then."""

    channel: str
    ts: str
    text: str
    blocks: list[JSON] | None


class AddedReaction(NamedTuple):
    channel: str
    ts: str
    name: str


class SlackStandIn(ServedStandIn):
    """The Slack Web API on a free loopback port, over a fresh copy of the seeded workspace.

    `token` is the one bot token it accepts; assign another value to it to make a running
    client's token invalid (a revoked token). `rate_limit()` makes the next calls of a
    method answer 429. `page_limit` caps every page below the `limit` asked for, as Slack
    may ("fewer than the requested number of items may be returned"), to make clients
    follow cursors.
    """

    def __init__(self, *, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self._seed_token = token
        self.page_limit: int | None = None
        self.calls: list[RecordedCall] = []
        self.reactions_added: list[AddedReaction] = []
        self.posted: list[ChangedMessage] = []
        self.updated: list[ChangedMessage] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._limits: dict[str, tuple[int, int]] = {}  # method -> (times left, retry after)
        self._messages: dict[str, list[Message]] = {}  # channel id -> messages, oldest first
        self._seed()
        self._methods: dict[str, Callable[[Mapping[str, Any]], JSON]] = {
            "auth.test": self._auth_test,
            "conversations.list": self._conversations_list,
            "conversations.history": self._conversations_history,
            "reactions.add": self._reactions_add,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
        }
        app = Starlette(
            routes=[
                Route("/api/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/{path:path}", self._nowhere, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )
        self._served = ServedApp(app, "slack-standin")

    # -- what tests use --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The Web API root, as `SLACK_API_URL` or `WebClient(base_url=...)` take it."""
        return f"{self._served.base_url}/api/"

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a daemon (its `slack` plugin) here."""
        return {"SLACK_API_URL": self.base_url, "SLACK_BOT_TOKEN": self.token}

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429 and `Retry-After`."""
        with self._lock:
            self._limits[method] = (times, retry_after)

    def reactions(self, channel: str, ts: str) -> dict[str, list[str]]:
        """The reactions a message has now: emoji name -> ids of the users who reacted."""
        with self._lock:
            message = self._find(channel, ts)
            if message is None:
                raise LookupError(f"no seeded message {ts} in {channel}")
            return {name: list(users) for name, users in message.reactions.items()}

    def message(self, channel: str, ts: str) -> Message:
        """A message as it is now (a copy)."""
        with self._lock:
            found = self._find(channel, ts)
            if found is None:
                raise LookupError(f"no message {ts} in {channel}")
            return Message(found.ts, found.user, found.text, {}, found.blocks, found.edited)

    def reset(self) -> None:
        """Reseed the workspace and forget calls, problems, rate limits and token changes: a
        fresh stand-in on the same address, for tests that share one."""
        with self._lock:
            self.token = self._seed_token
            self.page_limit = None
            self.calls.clear()
            self.reactions_added.clear()
            self.posted.clear()
            self.updated.clear()
            self.problems.clear()
            self._limits.clear()
            self._seed()

    # -- serving ---------------------------------------------------------------------------

    def handle(
        self,
        http_method: str,
        method: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, JSON, dict[str, str]]:
        """Answer one Web API request: (HTTP status, JSON body, extra headers).
        `headers` has lower-case names."""
        answer_headers = {"x-slack-req-id": secrets.token_hex(16)}
        params: dict[str, Any] = dict(query)
        token: str | None = None
        with self._lock:
            try:
                body_params, body_token = parse_body(headers.get("content-type", ""), body)
                token = bearer_token(headers) or body_token or params.get("token")
                params.update(body_params)
                params.pop("token", None)
                if method not in self._methods:
                    raise Refusal("unknown_method", "not a method the stand-in serves")
                if not token:
                    raise Refusal("not_authed")
                if token != self.token:
                    raise Refusal("invalid_auth")
                times, retry_after = self._limits.get(method, (0, 0))
                if times > 0:
                    self._limits[method] = (times - 1, retry_after)
                    self._record(method, params, token, http_method, "ratelimited")
                    answer_headers["retry-after"] = str(retry_after)
                    return 429, error_body("ratelimited"), answer_headers
                answer = self._methods[method](params)
            except Refusal as refusal:
                if refusal.problem:
                    self.problems.append(f"{http_method} {method}: {refusal.problem}")
                self._record(method, params, token, http_method, refusal.error)
                if refusal.error == "unknown_method":
                    refusal.extra["req_method"] = method
                return 200, error_body(refusal.error, **refusal.extra), answer_headers
            self._record(method, params, token, http_method, "ok")
            return 200, ok_body(answer), answer_headers

    async def _endpoint(self, request: Request) -> Response:
        status, body, headers = self.handle(
            request.method,
            request.path_params["method"],
            {name.lower(): value for name, value in request.headers.items()},
            list(request.query_params.multi_items()),
            await request.body(),
        )
        return _json_response(status, body, headers)

    async def _nowhere(self, request: Request) -> Response:
        with self._lock:
            self.problems.append(f"{request.method} {request.url.path}: not a Web API path")
        return Response("Not Found", status_code=404, media_type="text/plain")

    def _record(
        self, method: str, params: Mapping[str, Any], token: str | None, verb: str, outcome: str
    ) -> None:
        self.calls.append(RecordedCall(method, dict(params), token, verb, outcome))

    # -- the workspace ---------------------------------------------------------------------

    def _seed(self) -> None:
        self._messages = {channel.id: [] for channel in workspace.CHANNELS}
        for seed in workspace.MESSAGES:
            reactions = {name: list(users) for name, users in seed.reactions.items()}
            self._messages[seed.channel].append(Message(seed.ts, seed.user, seed.text, reactions))

    def _find(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self._messages.get(channel, []) if m.ts == ts), None)

    def _channel(self, params: Mapping[str, Any]) -> str:
        channel = str(params.get("channel") or "")
        if not channel:
            raise Refusal("invalid_arguments", "missing channel", **missing_field("channel"))
        if channel not in self._messages:
            raise Refusal("channel_not_found")
        return channel

    # -- the methods -----------------------------------------------------------------------

    def _auth_test(self, params: Mapping[str, Any]) -> JSON:
        return auth_test_body()

    def _conversations_list(self, params: Mapping[str, Any]) -> JSON:
        types = {t.strip() for t in str(params.get("types") or "public_channel").split(",")}
        if not types <= CHANNEL_TYPES:
            raise Refusal("invalid_types", f"unknown types {sorted(types - CHANNEL_TYPES)}")
        limit = _limit(params, default=100, largest=self.page_limit or LIST_MAX)
        channels = list(workspace.CHANNELS) if "public_channel" in types else []
        ids = [channel.id for channel in channels]
        start = _cursor_position(params, "team", ids)
        page = channels[start : start + limit]
        following = ids[start + limit] if start + limit < len(ids) else ""
        return channels_page(page, following)

    def _conversations_history(self, params: Mapping[str, Any]) -> JSON:
        channel = self._channel(params)
        limit = _limit(params, default=100, largest=self.page_limit or HISTORY_MAX)
        inclusive = str(params.get("inclusive", "")).lower() in {"1", "true"}
        oldest = _ts_value(params.get("oldest") or "0")
        latest = _ts_value(params["latest"]) if params.get("latest") else None

        def in_range(message: Message) -> bool:
            value = _ts_value(message.ts)
            above = value >= oldest if inclusive else value > oldest
            below = latest is None or (value <= latest if inclusive else value < latest)
            return above and below

        newest_first = [m for m in reversed(self._messages[channel]) if in_range(m)]
        keys = [m.ts.replace(".", "") for m in newest_first]
        start = _cursor_position(params, "next_ts", keys)
        page = newest_first[start : start + limit]
        following = keys[start + limit] if start + limit < len(keys) else ""
        return history_page(page, following)

    def _reactions_add(self, params: Mapping[str, Any]) -> JSON:
        if not params.get("channel") or not params.get("timestamp"):
            raise Refusal("no_item_specified", "channel and timestamp are both required")
        channel = self._channel(params)
        ts = str(params["timestamp"])
        if not TS_PATTERN.match(ts):
            raise Refusal("bad_timestamp")
        message = self._find(channel, ts)
        if message is None:
            raise Refusal("message_not_found")
        name = str(params.get("name") or "")
        if not name:
            raise Refusal("invalid_arguments", "missing name", **missing_field("name"))
        if not EMOJI_PATTERN.match(name):
            raise Refusal("invalid_name")
        users = message.reactions.setdefault(name, [])
        if workspace.BOT.id in users:
            raise Refusal("already_reacted")
        users.append(workspace.BOT.id)
        self.reactions_added.append(AddedReaction(channel, ts, name))
        return {}

    def _chat_post_message(self, params: Mapping[str, Any]) -> JSON:
        channel = self._channel_or_name(params)
        text, blocks = message_content(params)
        if not text and not blocks:
            raise Refusal("no_text")
        latest = max((_ts_value(m.ts) for m in self._messages[channel]), default=(0, 0))
        now = time.time()
        ts = f"{max(int(now), latest[0])}.{(latest[1] + 1) % 1_000_000:06d}"
        message = Message(ts, workspace.BOT.id, text, {}, blocks)
        self._messages[channel].append(message)
        self.posted.append(ChangedMessage(channel, ts, text, blocks))
        return posted_body(channel, message)

    def _chat_update(self, params: Mapping[str, Any]) -> JSON:
        channel = self._channel(params)  # chat.update takes an ID, never a name
        ts = str(params.get("ts") or "")
        if not ts:
            raise Refusal("invalid_arguments", "missing ts", **missing_field("ts"))
        message = self._find(channel, ts)
        if message is None:
            raise Refusal("message_not_found")
        if message.user != workspace.BOT.id:
            raise Refusal("cant_update_message")
        text, blocks = message_content(params)
        if not text and not blocks and "blocks" not in params:
            raise Refusal("no_text")
        message.text = text
        if "blocks" in params:  # omitted: the old blocks stay; []: they go
            message.blocks = blocks
        message.edited = f"{int(time.time())}.000000"
        self.updated.append(ChangedMessage(channel, ts, text, message.blocks))
        return updated_body(channel, message)

    def _channel_or_name(self, params: Mapping[str, Any]) -> str:
        """chat.postMessage takes a channel's ID or its name."""
        given = str(params.get("channel") or "").lstrip("#")
        for channel in workspace.CHANNELS:
            if given == channel.name:
                return channel.id
        return self._channel(params)


# -- arguments and responses -------------------------------------------------------------


def _limit(params: Mapping[str, Any], *, default: int, largest: int) -> int:
    value = params.get("limit")
    if value in (None, ""):
        return default
    try:
        limit = int(str(value))
    except ValueError:
        raise Refusal("invalid_limit", f"limit {value!r} is not a number") from None
    if limit < 0:
        raise Refusal("invalid_limit", f"limit {limit} is negative")
    return min(limit or default, largest)


def _cursor_position(params: Mapping[str, Any], kind: str, keys: list[str]) -> int:
    """Where the page a cursor names starts in `keys` (0 without a cursor)."""
    cursor = str(params.get("cursor") or "")
    if not cursor:
        return 0
    found_kind, key = cursor_key(cursor)
    if found_kind != kind or key not in keys:
        raise Refusal("invalid_cursor", f"cursor {cursor!r} was not given by this stand-in")
    return keys.index(key)


def _ts_value(ts: Any) -> tuple[int, int]:
    """A message timestamp as a comparable (seconds, microseconds)."""
    seconds, _, micros = str(ts).partition(".")
    try:
        return int(seconds or 0), int((micros or "0").ljust(6, "0")[:6])
    except ValueError:
        raise Refusal("invalid_ts_latest", f"timestamp {ts!r} is not a number") from None


def _json_response(status: int, body: JSON, headers: Mapping[str, str]) -> Response:
    return Response(
        json.dumps(body).encode(),
        status_code=status,
        headers=dict(headers),
        media_type="application/json; charset=utf-8",
    )
