"""Tool names between Tandem (`plugin.tool`) and the Anthropic API (`plugin__tool`).

The API allows only `[a-zA-Z0-9_-]{1,64}`. Plugin and tool names are lower_snake_case and
never contain a double underscore (the SDK enforces it when a plugin loads), so joining
them with `__` is reversible and no two tools map to the same API name.
"""

from __future__ import annotations

import re

API_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SEPARATOR = "__"


class UnmappableName(ValueError):
    pass


def to_api_name(tool: str) -> str:
    plugin, dot, bare = tool.partition(".")
    if not dot or not plugin or not bare or "." in bare:
        raise UnmappableName(f"tool name {tool!r} is not of the form plugin.tool")
    if SEPARATOR in plugin or SEPARATOR in bare:
        raise UnmappableName(f"tool name {tool!r} contains {SEPARATOR!r}")
    name = f"{plugin}{SEPARATOR}{bare}"
    if not API_NAME.match(name):
        raise UnmappableName(f"tool name {tool!r} maps to {name!r}, which the API does not allow")
    return name


def from_api_name(name: str) -> str:
    plugin, separator, bare = name.partition(SEPARATOR)
    if not separator or not plugin or not bare or SEPARATOR in bare or "." in name:
        raise UnmappableName(f"{name!r} is not the API name of any Tandem tool")
    return f"{plugin}.{bare}"
