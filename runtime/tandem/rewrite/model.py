"""Asking the model for script.py: one request with the material, and a repair turn per
round of disagreement, through the host's own `ModelApi` (the official `anthropic`
client, `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`). The answer must be one ```python
block; the script is taken from it, and an answer without one is a RewriteError."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tandem.llm.api import ModelApi, ModelApiError

if TYPE_CHECKING:
    from anthropic.types import Message

from .errors import RewriteError
from .instructions import ANSWER_FORMAT, REPAIR, SYSTEM

DEFAULT_MAX_TOKENS = 16_000  # a whole script; under the client's limit for a non-streamed call
_BLOCK = re.compile(
    r"^[ \t]*```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE
)


@dataclass
class Conversation:
    """The rewrite's exchange with the model; each turn answers with a whole script."""

    api: ModelApi
    model: str
    max_tokens: int = DEFAULT_MAX_TOKENS
    messages: list[dict[str, Any]] = field(default_factory=list)

    def write(self, material: str) -> str:
        return self._ask(f"{material}\nWrite script.py for this workflow.\n\n{ANSWER_FORMAT}")

    def repair(self, disagreements: list[str]) -> str:
        body = "\n\n".join(disagreements)
        return self._ask(f"{REPAIR}\n\n{body}\n\n{ANSWER_FORMAT}")

    def _ask(self, text: str) -> str:
        self.messages.append({"role": "user", "content": text})
        try:
            message = asyncio.run(self._create())
        except ModelApiError as error:
            raise RewriteError(f"asking the model for script.py: {error}") from None
        answer = "".join(b.text for b in message.content if b.type == "text")
        if message.stop_reason == "refusal":
            raise RewriteError("the model refused to write the script", answer=answer)
        self.messages.append({"role": "assistant", "content": answer or "(no answer)"})
        return extract_script(
            answer, cut_off=message.stop_reason == "max_tokens", max_tokens=self.max_tokens
        )

    async def _create(self) -> Message:
        try:
            return await self.api.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=SYSTEM,
                messages=self.messages,
            )
        finally:
            await self.api.close()  # one event loop per request: leave no client behind


def extract_script(answer: str, *, cut_off: bool = False, max_tokens: int = 0) -> str:
    """The script in the answer's ```python block (the one defining handler, if several)."""
    blocks = [m.group(1) for m in _BLOCK.finditer(answer)]
    if not blocks:
        if cut_off:
            raise RewriteError(
                f"the model's answer was cut off at max_tokens ({max_tokens}) before its"
                " code block ended: give it more with --max-tokens",
                answer=answer,
            )
        start = " ".join(answer.split())[:200] or "(nothing)"
        raise RewriteError(
            f"the model's answer has no ```python code block, so there is no script to"
            f" take from it; it began: {start!r}",
            answer=answer,
        )
    with_handler = [b for b in blocks if re.search(r"^def handler\(", b, re.MULTILINE)]
    return max(with_handler or blocks, key=len).rstrip() + "\n"
