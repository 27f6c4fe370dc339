"""An MCP server as a plugin: connected, supervised and restarted as docs/architecture.md
("When a plugin dies") says of plugins.

- A call in flight when the server dies fails at once with ToolUnavailable naming the
  server; it is never retried (the server may have acted on it).
- Every call has Tandem's deadline, min(call_timeout_s, the run's time left): past it,
  ToolTimeout; the server is told to cancel, and the session serves the next call.
- Restarts back off exponentially (plugins/restarts.py), with the same crash-loop report.
- A changed config starts the new server beside the old; new calls go to it once it has
  listed its tools, the old finishes its calls and stops. A config that fails to load
  leaves the old one serving (`load_error` says why).
- `notifications/tools/list_changed` lists the tools again: `tools` and `version` change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import mcp_types
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from tandem_sdk.errors import ToolError, ToolTimeout, ToolUnavailable

from tandem.plugins.provider import retire
from tandem.plugins.restarts import STABLE_AFTER_S, Restarts
from tandem.tools import HostTool

from .config import ServerConfig
from .connection import Connection, ConnectionLost, ServerLoadError, SessionExpired
from .mapping import ToolRefused, host_tool, result_json, version_of

log = logging.getLogger("tandem.mcp")


class McpServer:
    kind = "mcp"
    uid = None  # it runs as the host's user: an MCP server reaches what the user gives it

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.name = config.name
        self.tools: list[HostTool] = []
        self.tool_errors: list[str] = []  # tools it lists that Tandem cannot offer, and why
        self.version: str | None = None
        self.restarts = 0
        self.last_error: str | None = None
        self.load_error: str | None = None
        self._exits = Restarts(f"mcp server {self.name}", log)
        self._connection: Connection | None = None
        self._structured: set[str] = set()  # its tools with an output schema
        self._ready = asyncio.Event()
        self._swapped = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._reloading = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def up(self) -> bool:
        return self._ready.is_set()

    @property
    def pid(self) -> int | None:
        return self._connection.pid if self._connection else None

    @property
    def crash_loop(self) -> bool:
        return self._exits.crash_loop

    def environment_digests(self, nonce: bytes) -> dict[str, str]:
        return {}  # its environment is what its config declares, not the daemon's

    async def start(self) -> None:
        """Connect and list the tools; ServerLoadError (a DefinitionError) if it cannot."""
        self._adopt(await self._open(self.config))
        self._supervisor = asyncio.create_task(self._supervise(), name=f"mcp-{self.name}")

    async def invoke(
        self,
        tool: str,
        arguments_json: str,
        run_id: str,
        workflow: str,
        *,
        time_left_s: float | None = None,
    ) -> str:
        full_name = f"{self.name}.{tool}"
        budget = self.config.call_timeout_s
        if time_left_s is not None:
            budget = max(min(budget, time_left_s), 0.001)
        deadline = time.monotonic() + budget
        arguments: dict[str, Any] = json.loads(arguments_json or "{}")
        try:
            try:
                result = await self._call(full_name, tool, arguments, deadline, budget)
            except SessionExpired:  # the server did not run it: make it on a new session
                result = await self._call(full_name, tool, arguments, deadline, budget)
        except TimeoutError:
            raise ToolTimeout(
                f"{full_name}: mcp server {self.name!r} did not answer within {budget:g}s",
                tool=full_name,
            ) from None
        except ConnectionLost as error:
            raise ToolUnavailable(
                f"{full_name}: mcp server {self.name!r} went away during the call ({error}); "
                "it is being restarted",
                tool=full_name,
            ) from None
        except MCPError as error:  # the server refused the call (unknown tool, bad params)
            raise ToolError(error.error.message, tool=full_name, type="McpError") from None
        except (RuntimeError, ValidationError) as error:  # an answer MCP itself refuses
            raise ToolError(
                f"mcp server {self.name!r} answered with an invalid result: {error}",
                tool=full_name,
                type="InvalidResult",
            ) from None
        return result_json(full_name, result, tool in self._structured)

    async def _call(
        self, full_name: str, tool: str, arguments: dict[str, Any], deadline: float, budget: float
    ) -> mcp_types.CallToolResult:
        connection = await self._serving(full_name, deadline, budget)
        connection.in_flight += 1
        try:
            return await connection.call(tool, arguments, max(deadline - time.monotonic(), 0.001))
        except ConnectionLost:
            self._lose(connection)
            raise
        finally:
            connection.in_flight -= 1
            if connection.in_flight == 0:
                connection.idle.set()

    async def _serving(self, tool: str, deadline: float, budget: float) -> Connection:
        """The live connection, waiting for a restart to finish if need be."""
        while True:
            connection = self._connection
            if self._ready.is_set() and connection is not None and not connection.ended.is_set():
                return connection
            await self._exits.await_restart(
                self._ready,
                tool=tool,
                who=f"mcp server {self.name!r}",
                deadline=deadline,
                budget=budget,
                stopping=self._stopping,
                last_error=lambda: self.last_error,
            )

    def _lose(self, connection: Connection) -> None:
        if connection is self._connection:
            self._ready.clear()

    async def _open(self, config: ServerConfig) -> Connection:
        holder: list[Connection] = []
        connection = await Connection.open(config, lambda: self._list_changed(holder))
        holder.append(connection)
        return connection

    def _adopt(self, connection: Connection) -> None:
        self._connection = connection
        self._take_tools(connection.tools)
        self.version = version_of(connection.info, connection.tools)
        self.last_error = None
        self._ready.set()

    def _take_tools(self, listed: list[mcp_types.Tool]) -> None:
        tools, errors = [], []
        for tool in listed:
            try:
                tools.append(host_tool(self.config, tool))
            except ToolRefused as error:
                errors.append(str(error))
        for problem in sorted(set(errors) - set(self.tool_errors)):
            log.warning("mcp server %s: %s; its other tools load", self.name, problem)
        self.tools, self.tool_errors = tools, errors
        self._structured = {t.name for t in listed if t.output_schema is not None}

    def _list_changed(self, holder: list[Connection]) -> None:
        """`notifications/tools/list_changed`: list again, off the session's read loop."""
        if holder and not self._stopping:
            task = asyncio.create_task(self._relist(holder[0]), name=f"mcp-{self.name}-list")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _relist(self, connection: Connection) -> None:
        try:
            listed = await connection.list_tools()
        except (MCPError, ConnectionLost) as error:
            log.warning("mcp server %s: listing its changed tools failed: %s", self.name, error)
            return
        if connection is not self._connection:
            return
        before = {t.name for t in self.tools}
        connection.tools = listed
        self._take_tools(listed)
        self.version = version_of(connection.info, listed)
        after = {t.name for t in self.tools}
        log.info(
            "mcp server %s: its tools changed (added %s, removed %s); version %s",
            self.name,
            sorted(after - before) or "none",
            sorted(before - after) or "none",
            self.version,
        )

    async def reload(self, config: ServerConfig) -> ServerLoadError | None:
        """Serve a changed config: the new server beside the old, switched to once it has
        listed its tools; None then, else why it did not load (the old serves on)."""
        async with self._reloading:
            try:
                fresh = await self._open(config)
            except ServerLoadError as error:
                self.load_error = str(error)
                log.warning(
                    "mcp server %s: its new config does not load; the old serves: %s",
                    self.name,
                    error,
                )
                return error
            old = self._connection
            self.config, self.load_error = config, None
            self._adopt(fresh)
            self._swapped.set()
            log.info("mcp server %s restarted for its new config (%s)", self.name, self.version)
            if old is not None:
                task = asyncio.create_task(
                    retire(old, self.config.call_timeout_s), name=f"mcp-{self.name}-retire"
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return None

    async def stop(self) -> None:
        self._stopping = True
        self._ready.set()  # wake waiting calls, which see _stopping and fail
        tasks = [t for t in (self._supervisor, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()

    async def _supervise(self) -> None:
        while not self._stopping:
            connection = self._connection
            assert connection is not None
            started = time.monotonic()
            self._swapped.clear()
            ended = asyncio.ensure_future(connection.ended.wait())
            swapped = asyncio.ensure_future(self._swapped.wait())
            try:
                await asyncio.wait({ended, swapped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                swapped.cancel()
            if connection is not self._connection or not connection.ended.is_set():
                continue  # a reload: watch the new connection instead
            self._lose(connection)
            self.last_error = connection.exit_reason
            await connection.close()
            if connection.served or time.monotonic() - started > STABLE_AFTER_S:
                self._exits.healthy()
            while not self._stopping:
                await asyncio.sleep(self._exits.note_exit(self.last_error))
                # One at a time with reload(): each adopts a connection, and the one that
                # adopts second must not drop the first's without closing it.
                async with self._reloading:
                    if self._connection is not connection:
                        break  # a reload adopted a server meanwhile: watch that one
                    began = time.monotonic()
                    try:
                        fresh = await self._open(self.config)
                    except ServerLoadError as error:
                        self.last_error = str(error)
                        continue
                    self._adopt(fresh)
                self.restarts += 1
                log.info(
                    "mcp server %s restarted (pid %s) in %.0f ms",
                    self.name,
                    self.pid,
                    (time.monotonic() - began) * 1000,
                )
                break
