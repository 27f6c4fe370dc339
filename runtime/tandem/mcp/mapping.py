"""Between MCP and Tandem: an MCP tool as a HostTool, a tool result as result JSON, and
the version a trace names for a server."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from tandem_sdk.annotations import ToolAnnotations
from tandem_sdk.errors import ToolError

from tandem.tools import HostTool

from .config import ServerConfig

if TYPE_CHECKING:
    import mcp_types

# What a tool's bare name may hold: Tandem splits `<server>.<tool>` at the first dot, and
# the model's name for it (`<server>__<tool>`, llm/naming.py) at the first `__`.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# MCP's defaults for a hint a server leaves out (its spec, ToolAnnotations).
MCP_DEFAULTS = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}


class ToolRefused(ValueError):
    """A tool of the server Tandem cannot offer (its name, its schema); the others load."""


def host_tool(config: ServerConfig, tool: mcp_types.Tool) -> HostTool:
    """`tool` as `<server>.<tool>`, with its schema and annotations (the operator's
    override over the server's hints over MCP's defaults); ToolRefused when it cannot be."""
    name = f"{config.name}.{tool.name}"
    if not TOOL_NAME.match(tool.name) or "__" in tool.name:
        raise ToolRefused(
            f"tool {tool.name!r}: Tandem names a tool `server.tool` and the model "
            "`server__tool`, so a name holds only letters, digits, `_` and `-` (no `__`)"
        )
    try:
        return HostTool.create(
            name,
            config.name,
            tool.description or "",
            tool.input_schema,
            annotations_of(config, tool),
        )
    except Exception as error:  # jsonschema's SchemaError, or a $ref outside the schema
        raise ToolRefused(
            f"tool {tool.name!r}: its input schema cannot be checked: {error}"
        ) from None


def annotations_of(config: ServerConfig, tool: mcp_types.Tool) -> ToolAnnotations:
    hints = dict(MCP_DEFAULTS)
    if tool.annotations is not None:
        given = tool.annotations.model_dump(by_alias=True, exclude_none=True)
        hints.update({k: v for k, v in given.items() if k in MCP_DEFAULTS})
    hints.update(config.hints_for(tool.name))
    if hints["readOnlyHint"]:  # the other hints are about changes it does not make
        return ToolAnnotations(True, False, True, bool(hints["openWorldHint"]))
    return ToolAnnotations(
        False,
        bool(hints["destructiveHint"]),
        bool(hints["idempotentHint"]),
        bool(hints["openWorldHint"]),
    )


def result_json(tool: str, result: mcp_types.CallToolResult, structured: bool) -> str:
    """The result a coordinator gets: `structuredContent` for a tool with an output
    schema, else its content (one text item: that text; otherwise the list of content
    items as MCP gives them). `isError` is a ToolError with the content's text."""
    if result.is_error:
        raise ToolError(_text(result.content) or "the tool reported an error", tool=tool)
    if structured and result.structured_content is not None:
        return json.dumps(result.structured_content)
    content = result.content
    if len(content) == 1 and content[0].type == "text":
        return json.dumps(content[0].text)
    return json.dumps(
        [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in content]
    )


def _text(content: list[Any]) -> str:
    return "\n".join(item.text for item in content if getattr(item, "type", "") == "text")


def version_of(info: mcp_types.Implementation, tools: list[mcp_types.Tool]) -> str:
    """`<name> <version> tools:<hash>`: the server's own words from its handshake, and a
    hash of the tools it lists (names, descriptions, schemas, hints), which changes when
    what the model is offered does."""
    listing = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    digest = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:8]
    return " ".join(part for part in (info.name, info.version, f"tools:{digest}") if part)
