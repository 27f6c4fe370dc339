"""What a script coordinator's `handler(trigger, tools, virtual_files, subagent)` receives."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .client import ToolHostClient
from .errors import SubagentError


class PluginTools:
    """`tools.<plugin>`: attribute access names a tool, calling it calls ToolHost."""

    def __init__(self, client: ToolHostClient, plugin: str) -> None:
        self._client = client
        self._plugin = plugin

    def __getattr__(self, tool: str) -> _ToolCall:
        if tool.startswith("_"):
            raise AttributeError(tool)
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

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return self._client.call_tool(name, arguments or {})

    def list(self) -> list[str]:
        return [tool.name for tool in self._client.list_tools()]


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


def unavailable_subagent(*_: Any, **__: Any) -> Any:
    raise SubagentError("subagent() is not available in this version of the host")
