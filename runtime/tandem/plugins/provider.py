"""What the host needs of a tool provider: a plugin process (process.py) or an MCP server
(tandem.mcp.provider). The manager holds both by name; sessions, Health and the CLI
read them through this surface only."""

from __future__ import annotations

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
