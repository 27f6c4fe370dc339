"""One live connection to an MCP server: started (a process over stdio, or a session over
streamable HTTP), the handshake and the tool list, calls, and its end.

The client is the official `mcp.ClientSession`, over a stdio transport of our own: the
server leads its own process group, dies with the host (PDEATHSIG), gets only the
environment it declares plus `get_default_environment()` (HOME, PATH, ...), and its
stderr goes to the log (`tandem.mcp`), never to the host's own output. A line on its
stdout that is not JSON-RPC is logged and skipped. When the process exits, the calls in
flight fail at once (the session's read stream ends: CONNECTION_CLOSED).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client._transport import TransportStreams as Streams
from mcp.client.session import ClientSession, IncomingMessage
from mcp.client.stdio import get_default_environment
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from tandem_sdk.errors import DefinitionError

from tandem import __version__
from tandem.proc import CHUNK, dies_with_parent, end_group, signal_group

from .config import ServerConfig

log = logging.getLogger("tandem.mcp")

CLIENT = mcp_types.Implementation(name="tandem", version=__version__)
STDIN_CLOSE_GRACE_S = 1.0  # MCP's shutdown: stdin closed, then a signal after this long
TERM_GRACE_S = 1.0
_DRAIN_S = 1.0  # what the server wrote before it exited, read after its exit
_TAIL_LINES = 20
_STDERR_LINE_BYTES = 4096  # what the log keeps of one stderr line


class ServerLoadError(DefinitionError):
    """A server that did not start, answer its handshake or list its tools."""

    def __init__(self, config: ServerConfig, reason: str) -> None:
        super().__init__(
            config.source, f"mcp server {config.name!r} ({config.describe()}): {reason}"
        )
        self.server = config.name


class ConnectionLost(Exception):
    """The connection ended before the call's answer came."""


class SessionExpired(ConnectionLost):
    """A remote server answered 404 to the session's request: it no longer knows the
    session (it restarted), so it did not run the call; a new session may make it."""


class Connection:
    def __init__(self, config: ServerConfig, on_list_changed: Callable[[], None]) -> None:
        self.config = config
        self.info = mcp_types.Implementation(name=config.name, version="")
        self.tools: list[mcp_types.Tool] = []
        self.pid: int | None = None
        self.ended = asyncio.Event()  # the server went away, or close() ended it
        self.exit_reason = ""
        self.served = False  # answered a call: it was healthy, whatever ends it later
        self.in_flight = 0
        self.idle = asyncio.Event()
        self._on_list_changed = on_list_changed
        self._session: ClientSession | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stderr: deque[str] = deque(maxlen=_TAIL_LINES)
        self._http_refusal = ""  # a remote server's first HTTP error status, and where
        self._session_expired = False

    @classmethod
    async def open(cls, config: ServerConfig, on_list_changed: Callable[[], None]) -> Connection:
        """Start the server, shake hands and list its tools within `start_timeout_s`;
        ServerLoadError saying why not."""
        connection = cls(config, on_list_changed)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection._task = asyncio.create_task(connection._run(ready), name=f"mcp-{config.name}")
        try:
            await asyncio.shield(ready)
        except asyncio.CancelledError:
            await connection.close()
            raise
        except Exception as error:
            await connection.close()
            raise ServerLoadError(config, connection._why(error)) from None
        return connection

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    async def call(
        self, tool: str, arguments: dict[str, Any], budget_s: float
    ) -> mcp_types.CallToolResult:
        """The tool's CallToolResult; TimeoutError past `budget_s` (the server is told to
        stop, and the session serves on), ConnectionLost if the server went away."""
        session = self._session
        if session is None or self.ended.is_set():
            raise ConnectionLost(self.exit_reason or "not connected")
        try:
            result = await session.call_tool(tool, arguments, read_timeout_seconds=budget_s)
        except MCPError as error:
            if error.code == mcp_types.REQUEST_TIMEOUT:
                raise TimeoutError from None
            if error.code == mcp_types.CONNECTION_CLOSED or self.ended.is_set():
                raise ConnectionLost(self.exit_reason or error.error.message) from None
            if self._session_expired:  # end this session: the supervisor opens a new one
                self.exit_reason = "the server no longer knows the session (HTTP 404)"
                self._stop.set()
                raise SessionExpired(self.exit_reason) from None
            raise
        self.served = True
        return result

    async def list_tools(self) -> list[mcp_types.Tool]:
        session = self._session
        if session is None:
            raise ConnectionLost(self.exit_reason or "not connected")
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(self._task)

    async def _run(self, ready: asyncio.Future[None]) -> None:
        """Hold the session open (entered and left in this one task, as anyio wants) until
        close() or the server's end."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message, client_info=CLIENT)
                )
                with anyio.fail_after(self.config.start_timeout_s):
                    handshake = await session.initialize()
                    self._session = session
                    self.tools = await self.list_tools()
                self.info = handshake.server_info
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error if isinstance(error, Exception) else ConnectionLost())
            if not isinstance(error, Exception):
                raise
            if not self._stop.is_set():
                log.warning("mcp server %s: the connection failed: %r", self.config.name, error)
        finally:
            self._session = None
            if not self.exit_reason:
                self.exit_reason = "the connection closed"
            self.ended.set()

    def _why(self, error: BaseException) -> str:
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]  # anyio's task groups wrap the one that counts
        if self._http_refusal:
            why = f"{self._http_refusal} (check its url and headers)"
        elif isinstance(error, TimeoutError):
            why = f"no answer to the handshake within {self.config.start_timeout_s:g}s"
        elif isinstance(error, FileNotFoundError | PermissionError):
            why = f"cannot start {self.config.command!r}: {error.strerror}"
        elif isinstance(error, MCPError | ConnectionLost):
            why = self.exit_reason or str(error)
        else:
            why = f"{type(error).__name__}: {error}"
        tail = self.stderr_tail.strip()
        return f"{why}\n{tail}" if tail else why

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._on_list_changed()
        elif isinstance(message, Exception):
            log.warning("mcp server %s: %r", self.config.name, message)

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Streams]:
        if self.config.transport == "http":
            return _http(self.config, self._on_http_response)
        return self._stdio()

    async def _on_http_response(self, response: httpx2.Response) -> None:
        request = response.request
        if response.status_code < 400 or request.method != "POST":
            return  # a GET for the server's own stream may be refused: it is optional
        if not self._http_refusal:
            self._http_refusal = (
                f"HTTP {response.status_code} {response.reason_phrase} from {response.url}"
            )
        if response.status_code == 404:
            self._session_expired = "mcp-session-id" in request.headers

    @contextlib.asynccontextmanager
    async def _stdio(self) -> AsyncIterator[Streams]:
        config = self.config
        env = {**get_default_environment(), **config.env}
        command = _executable(config.command, env.get("PATH", ""), config.cwd)
        process = await asyncio.create_subprocess_exec(
            *dies_with_parent([command, *config.args]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=config.cwd,
            start_new_session=True,  # its own group: stopping it stops what it started
        )
        self.pid = process.pid
        assert process.stdin and process.stdout and process.stderr
        read_send, read = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write, write_receive = anyio.create_memory_object_stream[SessionMessage](0)
        reader = asyncio.create_task(self._read_stdout(process.stdout, read_send))
        tasks = [
            reader,
            asyncio.create_task(_write_stdin(process.stdin, write_receive, read_send)),
            asyncio.create_task(self._read_stderr(process.stderr)),
            asyncio.create_task(self._watch(process, reader, read_send)),
        ]
        try:
            yield read, write
        finally:
            process.stdin.close()
            exited = asyncio.ensure_future(process.wait())
            try:
                async with asyncio.timeout(STDIN_CLOSE_GRACE_S):
                    await asyncio.shield(exited)
            except TimeoutError:
                await end_group(process.pid, exited, TERM_GRACE_S)
            signal_group(process.pid, signal.SIGKILL)  # what it left in its group
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            read.close()
            write.close()

    async def _read_stdout(
        self,
        stdout: asyncio.StreamReader,
        sink: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        """Newline-delimited JSON-RPC, as MCP's stdio transport frames it."""
        buffer = bytearray()
        try:
            while chunk := await stdout.read(CHUNK):
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    line, buffer = bytes(buffer[:end]), buffer[end + 1 :]
                    if not line.strip():
                        continue
                    try:
                        message = mcp_types.jsonrpc_message_adapter.validate_json(
                            line, by_name=False
                        )
                    except ValueError:
                        log.warning(
                            "mcp server %s wrote a line that is not JSON-RPC on stdout "
                            "(ignored): %.200r",
                            self.config.name,
                            line,
                        )
                        continue
                    await sink.send(SessionMessage(message))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        """Every line to the log, read in chunks: a line of any length (readline() fails
        past 64 KiB, and a pipe nobody drains would block the server) is cut for the log."""
        pending = b""
        while chunk := await stderr.read(CHUNK):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > _STDERR_LINE_BYTES:  # no newline in sight: log what there is
                lines, pending = [*lines, pending], b""
            for line in lines:
                self._log_stderr(line)
        if pending:
            self._log_stderr(pending)

    def _log_stderr(self, line: bytes) -> None:
        text = line[:_STDERR_LINE_BYTES].decode("utf-8", "replace").rstrip()
        if len(line) > _STDERR_LINE_BYTES:
            text += f" ... [{len(line) - _STDERR_LINE_BYTES} bytes cut]"
        self._stderr.append(text)
        log.info("mcp %s: %s", self.config.name, text)

    async def _watch(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.Task[None],
        read_send: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        """The server's exit ends the session: its last words read, then the stream closed,
        which fails the calls in flight at once."""
        code = await process.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_S):
                await asyncio.shield(reader)
        if not self._stop.is_set():
            self.exit_reason = f"exited with status {code}"
            tail = self.stderr_tail.strip()[-500:]
            if tail:
                self.exit_reason += f": {tail}"
        read_send.close()
        self._stop.set()


def _executable(command: str, path: str, cwd: Path | None) -> str:
    """The program `command` names, found as the server's own PATH finds it (and a path
    with a slash from its cwd); FileNotFoundError when there is none, before anything
    starts (under setpriv, a missing program would only be an exit status)."""
    if "/" in command:
        found = (cwd or Path.cwd()) / command
        if found.is_file() and os.access(found, os.X_OK):
            return str(found)
    elif (which := shutil.which(command, path=path)) is not None:
        return which
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command)


async def _write_stdin(
    stdin: asyncio.StreamWriter,
    messages: MemoryObjectReceiveStream[SessionMessage],
    read_send: MemoryObjectSendStream[SessionMessage | Exception],
) -> None:
    try:
        async for message in messages:
            data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
            stdin.write(data.encode() + b"\n")
            await stdin.drain()
    except (ConnectionError, anyio.ClosedResourceError, anyio.BrokenResourceError):
        read_send.close()  # the server cannot be reached: end the session, not hang it


@contextlib.asynccontextmanager
async def _http(
    config: ServerConfig, on_response: Callable[[httpx2.Response], Awaitable[None]]
) -> AsyncIterator[Streams]:
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http_client = create_mcp_http_client(headers=dict(config.headers))
    http_client.event_hooks["response"].append(on_response)
    async with (
        http_client as client,
        streamable_http_client(config.url, http_client=client) as (read, write),
    ):
        yield read, write
