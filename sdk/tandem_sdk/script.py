"""What a script coordinator's `handler(trigger, tools, virtual_files, subagent)` receives."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

from .client import SubagentResult, ToolHostClient, ToolInfo
from .errors import Escalate


class PluginTools:
    """`tools.<plugin>`: attribute access names a tool, calling it calls ToolHost.
    `tools.<plugin>["tool-name"]` names one whose name is not an identifier (an MCP
    server's tool may hold a `-`)."""

    def __init__(self, client: ToolHostClient, plugin: str) -> None:
        self._client = client
        self._plugin = plugin

    def __getattr__(self, tool: str) -> _ToolCall:
        if tool.startswith("_"):
            raise AttributeError(tool)
        return _ToolCall(self._client, f"{self._plugin}.{tool}")

    def __getitem__(self, tool: str) -> _ToolCall:
        return _ToolCall(self._client, f"{self._plugin}.{tool}")


class _ToolCall:
    def __init__(self, client: ToolHostClient, name: str) -> None:
        self._client = client
        self.name = name

    def __call__(self, *args: Any, **arguments: Any) -> Any:
        if args:
            raise TypeError(f"{self.name}() takes keyword arguments only")
        return self._client.call_tool(self.name, arguments)

    def __repr__(self) -> str:
        return f"<tool {self.name}>"


class Tools:
    """`tools.slack.add_reaction(channel=..., ts=..., name=...)` is a CallTool to the host.

    The proxy is thin on purpose: scope and arguments are checked by the host, the same
    way for every coordinator. `tools.call("slack.add_reaction", {...})` does the same by name.
    """

    def __init__(self, client: ToolHostClient) -> None:
        self._client = client

    def __getattr__(self, plugin: str) -> PluginTools:
        if plugin.startswith("_"):
            raise AttributeError(plugin)
        return PluginTools(self._client, plugin)

    def __getitem__(self, plugin: str) -> PluginTools:
        """`tools["my-server"].tool(...)`: a plugin (an MCP server) whose name holds a `-`."""
        return PluginTools(self._client, plugin)

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return self._client.call_tool(name, arguments or {})

    def list(self) -> list[str]:
        return [tool.name for tool in self._client.list_tools()]

    def describe(self) -> builtins.list[ToolInfo]:
        """The tools in scope with their descriptions and input schemas: what a model
        coordinating this workflow is offered."""
        return self._client.list_tools()


class VirtualFiles(Mapping[str, str]):
    """The workflow's declared files, read-only, by virtual path: `virtual_files["team.md"]`."""

    def __init__(self, client: ToolHostClient) -> None:
        self._client = client
        self._paths: list[str] | None = None

    def read_bytes(self, path: str) -> bytes:
        return self._client.read_file(path)

    def read(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def __getitem__(self, path: str) -> str:
        return self.read(path)

    def __iter__(self) -> Iterator[str]:
        return iter(self._list())

    def __len__(self) -> int:
        return len(self._list())

    def __contains__(self, path: object) -> bool:
        return path in self._list()

    def _list(self) -> list[str]:
        if self._paths is None:
            self._paths = self._client.list_files()
        return self._paths


class Subagent:
    """`subagent(prompt, input=None, schema=None, tools=None, model=None)`: ask the host's
    LLM for help, as a child of this run (its tokens and tool calls are the run's).

    Returns the model's text, or, when `schema` (a JSON Schema) is given, its answer parsed
    and validated. `tools` names the run's tools it may use (globs allowed; none by
    default). Raises SubagentError when no valid answer comes, LimitExceeded when the run's
    token budget is spent, ToolNotInScope when `tools` asks for more than the run's scope.
    """

    def __init__(self, client: ToolHostClient) -> None:
        self._client = client
        self.last: SubagentResult | None = None  # the last call's text, output and usage

    def __call__(
        self,
        prompt: str,
        input: Any = None,
        schema: dict[str, Any] | None = None,
        tools: Sequence[str] | None = None,
        model: str | None = None,
    ) -> Any:
        self.last = self._client.subagent(prompt, input, schema, tools, model)
        return self.last.output if schema is not None else self.last.text

    def take_over(self, reason: str, context: Any = None) -> NoReturn:
        """Hand the whole run to the model: raises Escalate(reason, context), which ends
        the script; the host continues the same run with the LLM coordinator."""
        raise Escalate(reason, context)
