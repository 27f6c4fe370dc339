"""The MCP server over streamable HTTP at `/mcp` on the daemon's listener (`http: {mcp:
...}`): `/mcp` serves the workflows as tools, `/mcp/<workflow>` a workflow's tools with
each MCP session one run of mode `mcp`, as `tandem mcp serve` does over stdio (the same
`build`, over a Control client of the daemon's own socket). Every request carries
`Authorization: Bearer $TANDEM_MCP_TOKEN`, names an allowed Host (DNS rebinding) and reads
its body under the listener's deadline and budget. A session ends, and its run succeeds,
when the client deletes it (DELETE) or after `session_idle_s` without a request."""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from mcp.server.connection import Connection
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from tandem_sdk.errors import TandemError

from tandem.client import ControlClient
from tandem.config import McpHttp

from .app import Context, Served, build
from .session import McpSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from tandem.webhooks.listener import BodyReader

TOKEN_ENV = "TANDEM_MCP_TOKEN"  # noqa: S105 (the name of the variable)
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_SERVED = "tandem.served"  # a connection's Served, in its per-connection state


class McpTokenMissing(TandemError):
    pass


def token_from_env() -> str:
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise McpTokenMissing(
            f"http.mcp is on but {TOKEN_ENV} is not set: set it to the bearer token MCP"
            " clients send (or turn http.mcp off)"
        )
    return token


def allowed_hosts(listen_host: str, extra: list[str]) -> list[str]:
    """Host header values a request may carry: loopback's names and the listen host (a
    wildcard address names no host), plus `extra`; a name without a port, any port."""
    names = [*LOOPBACK, *extra]
    try:
        address = ipaddress.ip_address(listen_host)
        if not address.is_unspecified:
            names.append(f"[{listen_host}]" if address.version == 6 else listen_host)
    except ValueError:
        names.append(listen_host)
    hosts = []
    for name in dict.fromkeys(names):
        has_port = name.rpartition(":")[2].isdigit() and not name.endswith("]")
        hosts += [name] if has_port else [name, f"{name}:*"]
    return hosts


class Mcp:
    """The ASGI app at `/mcp` and `/mcp/{workflow}`; `run()` (a daemon task) holds its
    sessions, and requests wait until it has started."""

    def __init__(
        self,
        settings: McpHttp,
        token: str,
        listen_host: str,
        client: ControlClient,
        workflows_dir: Path,
        state_dir: Path,
        knows: Callable[[str], bool],
    ) -> None:
        self._token = token.encode()
        self._client = client
        self._workflows_dir = workflows_dir
        self._state_dir = state_dir
        self._knows = knows
        self.reader: BodyReader | None = None  # the listener's, set by create_app
        self._manager = StreamableHTTPSessionManager(
            build(self._served),
            security_settings=TransportSecuritySettings(
                allowed_hosts=allowed_hosts(listen_host, settings.allowed_hosts)
            ),
            session_idle_timeout=settings.session_idle_s,
            max_sessions=settings.max_sessions,
        )
        self._started = anyio.Event()
        self._group: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        async with anyio.create_task_group() as group, self._manager.run():
            self._group = group
            self._started.set()
            await anyio.sleep_forever()

    def _served(self, ctx: Context) -> Served:
        """The connection's Served, made at its first request: with a workflow, its own
        McpSession (one run), closed when the connection ends (DELETE, idle, shutdown)."""
        # The low-level context does not expose its Connection (mcp 2.3), whose state and
        # exit_stack are the SDK's place for per-connection data and teardown.
        connection: Connection = ctx.session._connection
        served = connection.state.get(_SERVED)
        if isinstance(served, Served):
            return served
        request = ctx.request
        workflow = request.path_params.get("workflow") if isinstance(request, Request) else None
        session = McpSession(self._client, workflow) if workflow else None
        assert self._group is not None
        served = Served(self._client, self._workflows_dir, self._state_dir, self._group, session)
        connection.state[_SERVED] = served
        if session is not None:
            connection.exit_stack.push_async_callback(session.close)
        return served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refused = self._refused(request)
        if refused is None and request.method == "POST" and self.reader is not None:
            body = await self.reader.read(request)
            if isinstance(body, Response):
                refused = body
            else:
                receive = _replayed(body, receive)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self._started.wait()
        await self._manager.handle_request(scope, receive, send)

    def _refused(self, request: Request) -> Response | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self._token):
            return JSONResponse(
                {"error": f"a bearer token is required: Authorization: Bearer ${TOKEN_ENV}"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        workflow = request.path_params.get("workflow")
        if workflow is not None and not self._knows(workflow):
            return JSONResponse({"error": f"no workflow {workflow!r}"}, status_code=404)
        return None


def _replayed(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then the connection's own messages (a
    disconnect, while a response streams)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
