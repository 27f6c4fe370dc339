"""Tandem's tools and results in MCP's terms: names valid for the Anthropic API (the
mapping the LLM loop uses), input schemas, the four annotation hints spelled out, and
structured output beside its JSON text."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from tandem_sdk._convert import ToolInfo

from tandem.llm.naming import UnmappableName, from_api_name, to_api_name

ANY_OBJECT: dict[str, Any] = {"type": "object"}


def mcp_tool(tool: ToolInfo) -> types.Tool | None:
    """The tool as MCP lists it; None for a name the API cannot carry."""
    try:
        name = to_api_name(tool.name)
    except UnmappableName:
        return None
    schema = tool.input_schema if tool.input_schema.get("type") == "object" else ANY_OBJECT
    return types.Tool(
        name=name,
        title=tool.name,
        description=tool.description or tool.name,
        input_schema=schema,
        annotations=types.ToolAnnotations.model_validate(tool.annotations.to_mcp()),
    )


def tandem_name(name: str) -> str | None:
    try:
        return from_api_name(name)
    except UnmappableName:
        return None


def result(value: Any, *notes: str) -> types.CallToolResult:
    """A result as JSON text, and as `structuredContent` when it is an object."""
    content: list[types.ContentBlock] = [types.TextContent(text=json.dumps(value))]
    content += [types.TextContent(text=note) for note in notes]
    structured = value if isinstance(value, dict) else None
    return types.CallToolResult(content=content, structured_content=structured)


def error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def text(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)])
