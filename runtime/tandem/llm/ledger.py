"""What a model loop writes into its run: trace events, token usage, and the token budget.

The loop never reaches tools through here (that is ToolHost's job); this is the host's
bookkeeping, which the host keeps for every run whoever coordinates it.
"""

from __future__ import annotations

from typing import Any, Protocol

from tandem_sdk.errors import LimitExceeded

from tandem.errors import LimitReached
from tandem.session import RunSession

TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


class Ledger(Protocol):
    def emit(self, kind: str, **data: Any) -> None: ...

    def add_usage(self, usage: dict[str, int]) -> None:
        """Count one model call's tokens; raise LimitReached when the budget is spent."""
        ...

    def remaining_tokens(self) -> int: ...


def tokens_used(usage: dict[str, int]) -> int:
    """Every token processed: input (cached or not) and output."""
    return sum(usage.get(key, 0) for key in TOKEN_KEYS)


class RunLedger:
    """The ledger of one run; a subagent's events carry its id and count on the same run."""

    def __init__(self, session: RunSession, *, subagent: str | None = None) -> None:
        self._session = session
        self._subagent = subagent
        self.usage: dict[str, int] = dict.fromkeys((*TOKEN_KEYS, "model_calls"), 0)

    def emit(self, kind: str, **data: Any) -> None:
        if self._subagent is not None:
            data = {"subagent": self._subagent, **data}
        self._session.emit(kind, **data)

    def add_usage(self, usage: dict[str, int]) -> None:
        for target in (self.usage, self._session.usage):
            for key in TOKEN_KEYS:
                target[key] = target.get(key, 0) + usage.get(key, 0)
            target["model_calls"] = target.get("model_calls", 0) + 1
        budget = self._session.limits.max_tokens
        used = tokens_used(self._session.usage)
        if used >= budget:
            message = (
                f"run {self._session.id} used {used} tokens, its max_tokens budget is {budget}"
            )
            # Like max_tool_calls: the run fails even if a script catches the subagent's error.
            self._session.limit_error = LimitExceeded(message, run_id=self._session.id)
            raise LimitReached("max_tokens", message)

    def remaining_tokens(self) -> int:
        return self._session.limits.max_tokens - tokens_used(self._session.usage)
