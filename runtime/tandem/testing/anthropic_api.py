"""A local stand-in for the Anthropic Messages API, for tests that must not touch the network.

It is a real HTTP server on 127.0.0.1 that speaks the wire format of `POST /v1/messages`:
the request is checked as the API checks it, and each request is answered with the next
`Reply` of the script a test gives it. Every request is recorded. Point the official
`anthropic` client (or a daemon) at it with `ANTHROPIC_BASE_URL`:

    replies = [Reply.tool_use(("state__get", {"key": "k"})), Reply.text("done")]
    with AnthropicStandIn(replies) as api:
        client = anthropic.Anthropic(base_url=api.base_url, api_key=api.api_key)
        ...
        assert api.requests[1].tool_results()[0]["content"] == "..."
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tandem.testing.replies import JSON, Reply, error_body, message_body, new_id
from tandem.testing.wire import InvalidRequest, PromptCache, check_request

DEFAULT_API_KEY = "sk-ant-test-standin"  # a fake key, for a local fake API
MESSAGES_PATH = "/v1/messages"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    path: str
    headers: Mapping[str, str]  # lower-case names
    body: Any  # the parsed JSON, or None when it was not JSON

    @property
    def messages(self) -> list[JSON]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def tools(self) -> list[JSON]:
        return list(self.body.get("tools", [])) if isinstance(self.body, dict) else []

    def tool_results(self) -> list[JSON]:
        """The `tool_result` blocks of the last message, in order."""
        if not self.messages or not isinstance(self.messages[-1].get("content"), list):
            return []
        return [b for b in self.messages[-1]["content"] if b.get("type") == "tool_result"]


class AnthropicStandIn:
    """The Messages API on a free loopback port, answering from a script of replies.

    `requests` holds every request received; `problems` every request the stand-in had to
    refuse (a malformed request, or no scripted reply left), so a test can assert it is empty.
    """

    def __init__(self, replies: Iterable[Reply] = (), *, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.problems: list[str] = []
        self._replies: deque[Reply] = deque(replies)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._holds: list[threading.Event] = []
        self._cache = PromptCache()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="anthropic-standin", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> AnthropicStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; releases stalled replies. Safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            for hold in self._holds:
                hold.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AnthropicStandIn:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests use --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a daemon (or an `anthropic` client) here."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key}

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        """Forget the script, the recorded requests and problems, and the cache: a fresh
        stand-in on the same address, for tests that share one."""
        with self._lock:
            self._replies.clear()
            self.requests.clear()
            self.problems.clear()
            self._cache = PromptCache()

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._replies)

    # -- serving ---------------------------------------------------------------------------

    def handle(
        self, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, JSON, dict[str, str]]:
        """Answer one request: (HTTP status, JSON body, extra headers)."""
        request_id = new_id("req_")
        try:
            body: Any = json.loads(raw or b"null")
        except json.JSONDecodeError:
            body = None
        with self._lock:
            self.requests.append(RecordedRequest(path, dict(headers), body))
            number = len(self.requests)
        if path.split("?")[0] != MESSAGES_PATH:
            return self._refuse(404, "not_found_error", f"no route for {path}", request_id)
        key = _api_key(headers)
        if key is None:
            return self._refuse(
                401, "authentication_error", "x-api-key header is required", request_id
            )
        if key != self.api_key:
            return self._refuse(401, "authentication_error", "invalid x-api-key", request_id)
        if "anthropic-version" not in headers:
            return self._refuse(
                400, "invalid_request_error", "anthropic-version: header is required", request_id
            )
        if body is None:
            return self._refuse(
                400, "invalid_request_error", "request body is not valid JSON", request_id
            )
        try:
            check_request(body)
        except InvalidRequest as problem:
            return self._refuse(400, "invalid_request_error", str(problem), request_id)
        reply = self._next_reply()
        if reply is None:
            return self._refuse(
                400,
                "invalid_request_error",
                f"tandem.testing stand-in: no scripted reply left for request {number}",
                request_id,
            )
        return self._answer(reply, body, request_id)

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._replies.popleft() if self._replies else None

    def _answer(
        self, reply: Reply, body: JSON, request_id: str
    ) -> tuple[int, JSON, dict[str, str]]:
        if reply.respond is not None:
            try:
                reply = reply.respond(body)
            except Exception as error:  # a test's callback failed: say so, do not hang
                return self._refuse(
                    400, "invalid_request_error", f"reply callback failed: {error!r}", request_id
                )
        if reply.hold is not None:
            with self._lock:
                self._holds.append(reply.hold)
            if self._stopping.is_set():
                reply.hold.set()
            reply.hold.wait()
            if self._stopping.is_set():
                return 503, error_body("api_error", "the stand-in stopped", request_id), {}
            following = self._next_reply()
            if following is None:
                return self._refuse(
                    400, "invalid_request_error", "no scripted reply after a stall", request_id
                )
            return self._answer(following, body, request_id)
        headers = {"request-id": request_id, **reply.headers}
        if reply.is_error:
            return (
                reply.status,
                error_body(reply.error_type, reply.error_message, request_id),
                headers,
            )
        with self._lock:
            usage = self._cache.usage_for(body, list(reply.content))
        usage.update(reply.usage or {})
        return 200, message_body(reply, body["model"], usage), headers

    def _refuse(
        self, status: int, error_type: str, message: str, request_id: str
    ) -> tuple[int, JSON, dict[str, str]]:
        with self._lock:
            self.problems.append(f"{status} {error_type}: {message}")
        return status, error_body(error_type, message, request_id), {"request-id": request_id}


def _handler_for(stand_in: AnthropicStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra = stand_in.handle(self.path, headers, raw)
            self._send(status, body, extra)

        def do_GET(self) -> None:
            self._send(404, error_body("not_found_error", f"no route for {self.path}", ""), {})

        def _send(self, status: int, body: JSON, headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status, _reason(status))
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests read `requests`, not an access log

    return Handler


def _api_key(headers: Mapping[str, str]) -> str | None:
    """The key from `x-api-key`, or from `authorization: Bearer` as newer clients send it."""
    if "x-api-key" in headers:
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _reason(status: int) -> str:
    if status == 529:
        return "Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
