"""What the host needs of a tool provider: a plugin process (process.py) or an MCP server
(tandem.mcp.provider). The manager holds both by name; sessions, Health and the CLI
read them through this surface only."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from tandem.tools import HostTool


class ToolProvider(Protocol):
    name: str
    tools: list[HostTool]
    restarts: int
    last_error: str | None  # why it last went down
    load_error: str | None  # why its newest code or config does not load (the old serves)

    @property
    def kind(self) -> str: ...  # "plugin" | "mcp"

    @property
    def up(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def uid(self) -> int | None: ...

    @property
    def crash_loop(self) -> bool: ...

    @property
    def version(self) -> str | None: ...  # what a trace names as the code that served

    async def start(self) -> None: ...  # DefinitionError when it cannot load

    async def stop(self) -> None: ...

    async def invoke(
        self,
        tool: str,
        arguments_json: str,
        run_id: str,
        workflow: str,
        *,
        time_left_s: float | None = None,
    ) -> str: ...

    def environment_digests(self, nonce: bytes) -> dict[str, str]: ...


class Replaced(Protocol):
    """A plugin's process or an MCP server's connection that new code or config replaced."""

    in_flight: int  # calls it still serves
    idle: asyncio.Event  # set when in_flight drops to 0

    async def close(self) -> None: ...


async def retire(replaced: Replaced, within_s: float) -> None:
    """Let a replaced process or connection finish its calls (within `within_s`, the call
    timeout), then close it."""
    try:
        if replaced.in_flight:
            replaced.idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await replaced.idle.wait()
    finally:
        await asyncio.shield(replaced.close())
