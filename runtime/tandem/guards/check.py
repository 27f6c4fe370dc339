"""The host's side of one run's guards: the history they see and their verdicts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandem.coordinators.script import ScriptCoordinator
    from tandem.session import RunSession

from .process import GuardFailed, GuardProcess


@dataclass(frozen=True)
class Refusal:
    guard: str
    reason: str  # the guard's answer, or why it gave none
    failed: bool = False  # it raised, timed out, answered something else or died

    @property
    def message(self) -> str:
        """What the coordinator is told."""
        if self.failed:
            return f"guard {self.guard} failed: {self.reason}"
        return f"guard {self.guard} refused this call: {self.reason}"


class RunGuards:
    def __init__(self, session: RunSession, process: GuardProcess) -> None:
        self._workflow = session.workflow
        self._process = process
        self.history: list[dict[str, Any]] = []  # every call of the run so far
        # Guarded calls take turns from the question to the answer's record: two parallel
        # calls must not both pass a guard that the first one's answer would change.
        self.turns = asyncio.Lock()

    def guarded(self, tool: str) -> bool:
        return self._workflow.guard_for(tool) is not None

    async def refusal(self, tool: str, arguments: dict[str, Any]) -> Refusal | None:
        """Why `tool`'s guard refuses this call; None lets it through."""
        name = self._workflow.guard_for(tool)
        if name is None:
            return None
        timeout = self._workflow.spec.guards.timeout_s
        call = {"tool": tool, "arguments": arguments}
        try:
            reply = await self._process.ask(name, call, self.history, timeout)
        except GuardFailed as error:
            return Refusal(name, str(error), failed=True)
        if "failed" in reply:
            return Refusal(name, str(reply["failed"]), failed=True)
        reason = reply.get("refuse")
        return None if reason is None else Refusal(name, str(reason))

    def record(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        kept: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        refused: str | None = None,
    ) -> None:
        """`kept` is the result: {"result": ...}, or {"result_over_cap": bytes} past
        `record.max_result_bytes` and GUARD_RESULT_BYTES (the history stays bounded)."""
        entry: dict[str, Any] = {"tool": tool, "arguments": arguments, "refused": refused}
        if error is not None:
            entry["error"] = error
        else:
            entry.update(kept or {"result": None})
        self.history.append(entry)

    async def close(self) -> None:
        await self._process.stop()


class GuardTurn:
    """One call's turn at its guard: `ask` takes the run's turn and asks; `give` hands it
    back (once the call's answer is recorded, or while a person decides on a held call,
    whose guard is then asked again). A call of a tool without a guard takes no turn."""

    def __init__(self, guards: RunGuards | None, tool: str) -> None:
        guarded = guards is not None and guards.guarded(tool)
        self._guards = guards if guarded else None
        self._tool = tool
        self._held = False

    async def ask(self, arguments: dict[str, Any]) -> Refusal | None:
        guards = self._guards
        if guards is None:
            return None
        if not self._held:
            await guards.turns.acquire()
            self._held = True
        return await guards.refusal(self._tool, arguments)

    def give(self) -> None:
        if self._held and self._guards is not None:
            self._held = False
            self._guards.turns.release()


def guards_for(session: RunSession, scripts: ScriptCoordinator | None) -> RunGuards | None:
    """The run's guards, when its workflow has any (their process starts at the first
    call that has a guard; without a script coordinator to launch it, every guard refuses)."""
    if not session.workflow.guard_names:
        return None
    return RunGuards(session, GuardProcess(scripts, session))
