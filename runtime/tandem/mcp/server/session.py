"""One MCP session as a run of its workflow: opened through Control (OpenSession) at the
client's first tool call, its tools called through ToolHost with the run's token, and
ended when the client goes (the run succeeds) or this process dies (the daemon cancels
it). A call held for approval reports it as progress, and its result says how it ended."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
from tandem_sdk.errors import InterfaceError, TandemError, ToolError

from tandem.client import AsyncToolHostClient, ControlClient, OpenSession, ToolInfo

from . import convert

Report = Callable[[str], Coroutine[Any, Any, None]]


@dataclass
class _Pending:
    tool: str
    report: Report
    notes: list[str] = field(default_factory=list)


class McpSession:
    def __init__(self, client: ControlClient, workflow: str) -> None:
        self._client = client
        self.workflow = workflow
        self._opened: OpenSession | None = None
        self._toolhost: AsyncToolHostClient | None = None
        self._lock = anyio.Lock()
        self._pending: dict[int, _Pending] = {}
        self._group: anyio.abc.TaskGroup | None = None

    @property
    def run_id(self) -> str | None:
        return self._opened.run_id if self._opened else None

    async def open(self, group: anyio.abc.TaskGroup, client_name: str, version: str) -> None:
        """Open the run once (later calls return at once)."""
        async with self._lock:
            if self._opened is not None:
                return
            self._opened = await anyio.to_thread.run_sync(
                self._client.open_session, self.workflow, client_name, version
            )
            self._toolhost = AsyncToolHostClient(self._opened.toolhost_target, self._opened.token)
            await self._toolhost.get_run()  # each call's deadline: the workflow's timeout_s
            group.start_soon(self._watch_approvals)

    async def tools(self) -> list[ToolInfo]:
        """The tools in scope: the run's once open; before, the workflow's (listing
        opens no run, so a client that only looks leaves nothing in `tandem runs`)."""
        if self._opened is not None:
            return self._opened.tools
        return await anyio.to_thread.run_sync(self._client.tools, self.workflow)

    async def call(
        self, name: str, arguments: dict[str, Any], report: Report
    ) -> types.CallToolResult:
        assert self._toolhost is not None
        pending = _Pending(name, report)
        key = id(pending)
        self._pending[key] = pending
        try:
            value = await self._toolhost.call_tool(name, arguments)
        except ToolError as error:  # a denial among them: "a person denied this call: ..."
            return convert.error("\n".join([*pending.notes, str(error)]))
        except InterfaceError as error:  # refused by the host: scope, schema, limits
            return convert.error(f"{type(error).__name__}: {error}")
        except TandemError as error:
            return convert.error(str(error))
        finally:
            self._pending.pop(key, None)
        # Held, then run: a person approved it (the trace's decision may still be on its way).
        approved = ["a person approved this call"] if pending.notes else []
        return convert.result(value, *pending.notes, *approved)

    async def _watch_approvals(self) -> None:
        """Hear of the run's held calls (on the session's own stream, in a thread: the
        Control client is synchronous) and tell the calls of that tool."""
        assert self._opened is not None
        opened = self._opened

        def follow() -> None:
            for held in opened.holds():
                anyio.from_thread.run(self._approval, held.tool, held.decide)

        # A thread for the session's life: its own limiter, not a slot of the shared pool
        # (the daemon serves many sessions over HTTP).
        with contextlib.suppress(Exception):  # the stream ends with the run, or breaks
            await anyio.to_thread.run_sync(
                follow, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(1)
            )

    async def _approval(self, tool: str, decide: str) -> None:
        """A call of the tool is held: say so, with how a person answers it."""
        for pending in [p for p in self._pending.values() if p.tool == tool]:
            note = f"held for a person's approval: {decide}"
            pending.notes.append(note)
            await pending.report(note)

    async def close(self) -> None:
        """End the run as succeeded (the client closed the session)."""
        if self._toolhost is not None:
            await self._toolhost.close()
        if self._opened is not None:
            await anyio.to_thread.run_sync(self._opened.close)
