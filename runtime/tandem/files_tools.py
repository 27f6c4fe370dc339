"""The built-in `files.list` and `files.read` tools: the model reaches a workflow's virtual
files exactly as a script does. Their schemas are derived like any plugin tool's, on first
use (`file_tools()`): a host whose workflows declare no files never pays for it."""

from __future__ import annotations

import functools

from tandem_sdk.plugin import define_tool, tool

from .tools import HostTool

PROVIDER = "files"
FILE_TOOL_NAMES = frozenset({f"{PROVIDER}.list", f"{PROVIDER}.read"})


@tool(read_only=True, open_world=False, name="list")
def list_files() -> list[str]:
    """List the virtual paths of this workflow's files."""
    raise AssertionError("served by the run, never called")


@tool(read_only=True, open_world=False, name="read")
def read_file(path: str) -> str:
    """Read one of this workflow's files as UTF-8 text.

    Args:
        path: the virtual path, as files.list gives it.
    """
    raise AssertionError("served by the run, never called")


def _host_tool(function: object) -> HostTool:
    definition = define_tool(PROVIDER, function)  # type: ignore[arg-type]
    return HostTool.create(
        f"{PROVIDER}.{definition.name}",
        PROVIDER,
        definition.description,
        definition.input_schema,
        definition.annotations,
    )


@functools.cache
def file_tools() -> dict[str, HostTool]:
    """The two tools by name (derived once)."""
    tools = {t.name: t for t in (_host_tool(list_files), _host_tool(read_file))}
    assert set(tools) == FILE_TOOL_NAMES
    return tools
