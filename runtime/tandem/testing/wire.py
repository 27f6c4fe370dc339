"""The request checks and token accounting of the Messages API stand-in.

The checks are the ones the real API makes that a tool-use loop can get wrong: required
fields, roles, tool names, `tool_use` / `tool_result` pairing, and the number of
`cache_control` breakpoints. A failed check is a 400 `invalid_request_error`, worded
like the real one. Token counts are estimates (about four characters a token); prompt
caching is simulated by remembering every prefix that ended at a breakpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

JSON = dict[str, Any]
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_CACHE_BREAKPOINTS = 4
KNOWN_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_k",
    "top_p",
    "thinking",
    "cache_control",
    "service_tier",
    "container",
    "output_config",
    "mcp_servers",
    "context_management",
}
BLOCK_TYPES = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
}


class InvalidRequest(Exception):
    """What the real API would answer with 400 invalid_request_error."""


def check_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    extra = sorted(set(body) - KNOWN_FIELDS)
    if extra:
        raise InvalidRequest(f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (an integer of at least 1)")
    if body.get("stream"):
        raise InvalidRequest("stream: the tandem.testing stand-in does not stream responses")
    _check_tools(body.get("tools", []))
    _check_system(body.get("system"))
    _check_messages(body.get("messages"))
    breakpoints = sum(1 for block in _cacheable_blocks(body) if "cache_control" in block)
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequest(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided."
            f" Found {breakpoints}."
        )


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{i}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise InvalidRequest(
                f"tools.{i}.custom.name: String should match pattern '{TOOL_NAME.pattern}'"
            )
        if name in names:
            raise InvalidRequest("tools: Tool names must be unique.")
        names.add(name)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidRequest(f"tools.{i}.custom.input_schema.type: Field required ('object')")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or any(
        not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str)
        for b in system
    ):
        raise InvalidRequest("system: Input should be a string or a list of text blocks")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise InvalidRequest(f"messages.{i}.content: Input should be a string or a list")
        for j, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
                raise InvalidRequest(f"messages.{i}.content.{j}: unknown content block type")
            if block["type"] == "text" and not block.get("text"):
                raise InvalidRequest(
                    f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
                )
    if messages[0]["role"] != "user":
        raise InvalidRequest("messages: the first message must use the 'user' role")
    for i, message in enumerate(messages):
        _check_pairing(i, message, messages[i - 1] if i else None, messages[i + 1 : i + 2])


def _blocks(message: JSON | None, kind: str) -> list[JSON]:
    if message is None or not isinstance(message.get("content"), list):
        return []
    return [b for b in message["content"] if b.get("type") == kind]


def _check_pairing(i: int, message: JSON, previous: JSON | None, following: list[JSON]) -> None:
    if message["role"] == "assistant":
        uses = [b.get("id") for b in _blocks(message, "tool_use")]
        answered = {
            b.get("tool_use_id")
            for b in _blocks(following[0] if following else None, "tool_result")
        }
        missing = [u for u in uses if u not in answered]
        if missing and following:
            raise InvalidRequest(
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks"
                f" immediately after: {', '.join(map(str, missing))}. Each `tool_use` block must"
                " have a corresponding `tool_result` block in the next message."
            )
        return
    results = _blocks(message, "tool_result")
    if not results:
        return
    offered = {b.get("id") for b in _blocks(previous, "tool_use")} if previous else set()
    content = message["content"]
    for j, block in enumerate(content):
        if block.get("type") != "tool_result":
            if any(b.get("type") == "tool_result" for b in content[j:]):
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: `tool_result` blocks must come first in the"
                    " content of a user message"
                )
            continue
        if block.get("tool_use_id") not in offered:
            raise InvalidRequest(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result`"
                f" blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a"
                " corresponding `tool_use` block in the previous message."
            )


# -- tokens ------------------------------------------------------------------------------


def estimate_tokens(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, math.ceil(len(text) / 4))


def _cacheable_blocks(body: JSON) -> list[JSON]:
    """Tools, then system blocks, then message content blocks: the API's cache order."""
    blocks: list[JSON] = [t for t in body.get("tools", []) if isinstance(t, dict)]
    system = body.get("system")
    if isinstance(system, list):
        blocks.extend(b for b in system if isinstance(b, dict))
    for message in body.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            blocks.extend(b for b in message["content"] if isinstance(b, dict))
    return blocks


class PromptCache:
    """Remembers prefixes that ended at a `cache_control` breakpoint, like the API's cache
    (without its minimum length or its five-minute lifetime)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def usage_for(self, body: JSON, output: Any) -> dict[str, int]:
        blocks = _cacheable_blocks(body)
        system = body.get("system")
        fixed = estimate_tokens(system) if isinstance(system, str) else 0
        hasher = hashlib.sha256()
        tokens = 0
        prefixes: list[tuple[str, int]] = []
        for block in blocks:
            plain = {k: v for k, v in block.items() if k != "cache_control"}
            hasher.update(json.dumps(plain, sort_keys=True).encode())
            tokens += estimate_tokens(plain)
            if "cache_control" in block:
                prefixes.append((hasher.copy().hexdigest(), tokens))
        total = (
            fixed
            + tokens
            + sum(
                estimate_tokens(m.get("content", ""))
                for m in body.get("messages") or []
                if isinstance(m, dict) and isinstance(m.get("content"), str)
            )
        )
        read = next((n for digest, n in reversed(prefixes) if digest in self._seen), 0)
        written = prefixes[-1][1] - read if prefixes else 0
        self._seen.update(digest for digest, _ in prefixes)
        return {
            "input_tokens": max(0, total - read - written),
            "output_tokens": estimate_tokens(output),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }
