"""The tool-use loop: ask the model, run the tools it asks for through ToolHost, answer
with their results, until it ends its turn. The LLM coordinator and the subagent both
drive their conversations with it.

Everything a tool call does goes through the run's ToolHost client, so the model is
checked for scope, arguments and limits exactly as a script is. What the host refuses
goes back to the model as an `is_error` tool result, so it can correct itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tandem_sdk.aio import AsyncToolHostClient
from tandem_sdk.client import ToolInfo
from tandem_sdk.errors import (
    InterfaceError,
    LimitExceeded,
    NotFound,
    ToolError,
    Unauthenticated,
)

from tandem.errors import LimitReached, RunFailed
from tandem.llm.api import ModelApi
from tandem.llm.ledger import Ledger
from tandem.llm.naming import UnmappableName, from_api_name, to_api_name
from tandem.suggest import did_you_mean

if TYPE_CHECKING:
    from anthropic.types import Message

JSON = dict[str, Any]
# Per request; the run's token budget caps it further.
MAX_OUTPUT_TOKENS = 8192
CACHE = {"type": "ephemeral"}
DONE = ("end_turn", "stop_sequence")


def tool_definitions(tools: Iterable[ToolInfo]) -> list[JSON]:
    """The tools as the API takes them, the last one marked as a cache breakpoint."""
    definitions: list[JSON] = []
    for tool in tools:
        definition: JSON = {"name": to_api_name(tool.name), "input_schema": tool.input_schema}
        # The API has no field for what a tool does: the model reads it in the description.
        behaviour = f"[{tool.annotations.describe()}]"
        definition["description"] = f"{tool.description}\n\n{behaviour}".strip()
        definitions.append(definition)
    if definitions:
        definitions[-1] = {**definitions[-1], "cache_control": CACHE}
    return definitions


class ToolUseLoop:
    """One conversation with the model. `ask` adds a user message and returns the model's
    final text once it ends its turn; it can be called again to continue."""

    def __init__(
        self,
        *,
        api: ModelApi,
        tools: AsyncToolHostClient,
        ledger: Ledger,
        model: str,
        system: list[JSON],
        offered: list[ToolInfo],
        max_turns: int,
        restrict: bool = False,
    ) -> None:
        self._api = api
        self._tools = tools
        self._ledger = ledger
        self._model = model
        self._system = system
        self._definitions = tool_definitions(offered)
        # A subagent given a subset refuses the rest itself; otherwise every name goes to
        # ToolHost, which decides (so an out-of-scope call is refused as a script's is).
        self._allowed = {t.name for t in offered} if restrict else None
        self._max_turns = max_turns
        self.messages: list[JSON] = []
        self.turns = 0
        self._cap = MAX_OUTPUT_TOKENS  # the last request's max_tokens

    async def ask(self, text: str) -> str:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
        while True:
            response = await self._send()
            content = [b for b in map(_block_param, response.content) if b is not None]
            stop = response.stop_reason
            if content:
                self.messages.append({"role": "assistant", "content": content})
            uses = [b for b in content if b["type"] == "tool_use"]
            if stop == "tool_use" and uses:
                results = await self._run_tools(uses)
                self.messages.append({"role": "user", "content": results})
            elif stop == "pause_turn":
                continue  # the API asks for the same conversation back, as it is
            elif stop in DONE:
                return _text(content)
            elif stop == "refusal":
                said = _text(content)
                raise RunFailed("the model refused to continue" + (f": {said}" if said else ""))
            elif stop == "max_tokens":
                raise RunFailed(
                    f"the model's answer was cut off at max_tokens ({self._cap} tokens)"
                )
            else:
                raise RunFailed(f"the model stopped with stop_reason {stop!r}")

    # -- model -----------------------------------------------------------------------------

    async def _send(self) -> Message:
        if self.turns >= self._max_turns:
            raise LimitReached(
                "max_turns", f"the model did not finish within max_turns ({self._max_turns})"
            )
        self.turns += 1
        self._cap = max(1, min(MAX_OUTPUT_TOKENS, self._ledger.remaining_tokens()))
        params: JSON = {
            "model": self._model,
            "max_tokens": self._cap,
            "system": self._system,
            "messages": _with_cache_breakpoint(self.messages),
        }
        if self._definitions:
            params["tools"] = self._definitions
        self._ledger.emit(
            "model.request",
            turn=self.turns,
            model=self._model,
            max_tokens=params["max_tokens"],
            messages=len(self.messages),
            tools=len(self._definitions),
        )
        started = time.perf_counter()
        try:
            response = await self._api.create(**params)
        except RunFailed as error:
            self._ledger.emit("model.error", turn=self.turns, message=error.message)
            raise
        usage = _usage(response)
        self._ledger.emit(
            "model.response",
            turn=self.turns,
            stop_reason=response.stop_reason,
            usage=usage,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            text=_text(_block_param(b) for b in response.content),
            tool_uses=[
                {"id": b.id, "tool": _tandem_name(b.name) or b.name, "input": b.input}
                for b in response.content
                if b.type == "tool_use"
            ],
        )
        self._ledger.add_usage(usage)
        return response

    # -- tools -----------------------------------------------------------------------------

    async def _run_tools(self, uses: list[JSON]) -> list[JSON]:
        """Run every tool_use of a turn concurrently; answer them in the model's order."""
        tasks = [asyncio.create_task(self._run_tool(use)) for use in uses]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _run_tool(self, use: JSON) -> JSON:
        name = _tandem_name(use["name"])
        if name is None or (self._allowed is not None and name not in self._allowed):
            message = f"no tool named {use['name']!r} is offered here{self._hint(use)}"
            self._ledger.emit(
                "tool.refused", tool=name or use["name"], error="NotOffered", message=message
            )
            return _result(use, message, error=True)
        try:
            result = await self._tools.call_tool(name, use["input"])
        except ToolError as error:
            return _result(use, f"{error.type}: {error.reason}", error=True)
        except Unauthenticated as error:
            raise RunFailed(f"the run's token was refused: {error.message}") from None
        except LimitExceeded as error:
            raise LimitReached("max_tool_calls", error.message) from None
        except NotFound as error:
            # A tool nobody provides: named, with the suggestions, as the model knows tools
            # (API names); a file not found, say, keeps the host's words.
            hint = self._hint(use)
            message = f"no tool named {use['name']!r}{hint}" if hint else error.message
            return _result(use, f"NotFound: {message}", error=True)
        except InterfaceError as error:
            return _result(use, f"{type(error).__name__}: {error.message}", error=True)
        return _result(use, json.dumps(result))

    def _hint(self, use: JSON) -> str:
        """The offered tools whose names are close to the one the model asked for."""
        if any(d["name"] == use["name"] for d in self._definitions):
            return ""
        return did_you_mean(str(use["name"]), (d["name"] for d in self._definitions))


def _tandem_name(api_name: str) -> str | None:
    try:
        return from_api_name(api_name)
    except UnmappableName:
        return None


def _result(use: JSON, content: str, *, error: bool = False) -> JSON:
    block: JSON = {"type": "tool_result", "tool_use_id": use["id"], "content": content}
    if error:
        block["is_error"] = True
    return block


def _block_param(block: Any) -> JSON | None:
    """A response block as a request block; empty text blocks are dropped (the API refuses
    them in requests)."""
    if block.type == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    dumped: JSON = block.model_dump(exclude_none=True)
    return dumped


def _text(blocks: Iterable[JSON | None]) -> str:
    return "".join(b["text"] for b in blocks if b is not None and b["type"] == "text")


def _with_cache_breakpoint(messages: list[JSON]) -> list[JSON]:
    """The conversation with its last block marked, so each turn reads the previous turns
    from the cache. Only the copy sent is marked: the API allows four breakpoints."""
    if not messages:
        return messages
    last = messages[-1]
    blocks = list(last["content"])
    blocks[-1] = {**blocks[-1], "cache_control": CACHE}
    return [*messages[:-1], {**last, "content": blocks}]


def _usage(response: Message) -> dict[str, int]:
    usage = response.usage
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_input_tokens or 0,
        "cache_write_tokens": usage.cache_creation_input_tokens or 0,
    }
