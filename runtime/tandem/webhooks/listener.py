"""The daemon's HTTP listener: a starlette app served by uvicorn on the daemon's own event
loop. It only serves webhook paths; everything else is the intake's. The limits that hold
before a delivery is verified (connections, header and body deadlines, buffered bytes)
are `guard`'s."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tandem_sdk.errors import TandemError

from tandem.config import ListenerLimits

if TYPE_CHECKING:
    from tandem.mcp.server.http import Mcp
    from tandem.slack_approvals import SlackApprovals

from .guard import BodyBudget, protocol_settings
from .intake import Delivery, WebhookIntake

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
# A sender's address as logged: bounded, whatever a proxy header held.
MAX_REMOTE_CHARS = 64


class ListenError(TandemError):
    pass


def parse_listen(text: str, flag: str = "--http") -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT` (loopback unless a host is named)."""
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ListenError(f"{flag} {text!r}: expected HOST:PORT, :PORT or PORT") from None
    return host, port


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind now, so a taken port is a clear error at start rather than inside uvicorn."""
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on connections of a socket that says
    # so, and without it a response's body waits for the ACK of its headers (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    return sock


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def create_app(
    intake: WebhookIntake,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    limits: ListenerLimits | None = None,
    mcp: Mcp | None = None,
    slack: SlackApprovals | None = None,
) -> Starlette:
    """The listener's app: webhook paths, `/mcp` (`/mcp/<workflow>`) when `mcp` is given,
    and Slack's button clicks on held calls (`/hooks/slack/interactions`) when `slack` is;
    their requests read their bodies under the same deadline and budget."""
    limits = limits or ListenerLimits()
    budget = BodyBudget(max(limits.max_buffered_bytes, max_body_bytes))
    reader = BodyReader(max_body_bytes, limits.body_timeout_s, budget)

    async def deliver(request: Request) -> Response:
        path = request.url.path
        if not intake.knows(path):
            return JSONResponse({"error": f"no webhook at {path}"}, status_code=404)
        if request.method != "POST":
            return JSONResponse(
                {"error": "webhooks take POST"}, status_code=405, headers={"Allow": "POST"}
            )
        body = await reader.read(request)
        if isinstance(body, Response):
            return body
        client = request.client
        remote = f"{client.host}:{client.port}" if client else "?"
        answer = intake.receive(
            Delivery(
                path=path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                remote=remote[:MAX_REMOTE_CHARS],
            )
        )
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [Route("/{path:path}", deliver, methods=methods)]
    if mcp is not None:
        mcp.reader = reader
        routes[:0] = [Route("/mcp", mcp), Route("/mcp/{workflow}", mcp)]
    if slack is not None:
        from .slack import INTERACTIONS_PATH, interactions_endpoint

        clicks = interactions_endpoint(reader, slack)
        routes[:0] = [Route(INTERACTIONS_PATH, clicks, methods=methods)]
    return Starlette(routes=routes)


class BodyReader:
    """A request's body, whole, within `max_body_bytes`, `timeout_s` and the shared budget;
    or the response that refuses it."""

    def __init__(self, max_body_bytes: int, timeout_s: float, budget: BodyBudget) -> None:
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self.budget = budget

    async def read(self, request: Request) -> bytes | Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return _too_large(self.max_body_bytes)
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout_s):
                async for chunk in request.stream():
                    if len(body) + len(chunk) > self.max_body_bytes:
                        return _too_large(self.max_body_bytes)
                    if not self.budget.take(len(chunk)):
                        log.warning("%s: request bodies are over their budget", request.url.path)
                        return JSONResponse(
                            {"error": "too many requests in progress; send again later"},
                            status_code=503,
                            headers={"Retry-After": "5"},
                        )
                    body += chunk
        except TimeoutError:
            return JSONResponse(
                {"error": f"the body did not arrive within {self.timeout_s:g}s"},
                status_code=408,
                headers={"Connection": "close"},
            )
        finally:
            self.budget.give_back(len(body))
        return bytes(body)


def _too_large(max_body_bytes: int) -> Response:
    return JSONResponse(
        {"error": f"the body is over the limit of {max_body_bytes} bytes"}, status_code=413
    )


class _DaemonServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon owns SIGTERM and SIGINT, and stops this server itself


class HttpListener:
    def __init__(
        self,
        app: Starlette,
        sock: socket.socket,
        limits: ListenerLimits | None = None,
        trusted_proxies: list[str] | None = None,
    ) -> None:
        self._sock = sock
        config = uvicorn.Config(
            app,
            log_config=None,  # the daemon's logging
            access_log=False,  # the intake logs each delivery
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
            # X-Forwarded-For names the sender only when it comes from a proxy the operator
            # named; anyone else could write any address there.
            proxy_headers=bool(trusted_proxies),
            forwarded_allow_ips=list(trusted_proxies or []),
            **protocol_settings(limits or ListenerLimits()),
        )
        self._server = _DaemonServer(config)

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def serve(self) -> None:
        await self._server.serve(sockets=[self._sock])

    def stop(self) -> None:
        self._server.should_exit = True
