"""The host's side of one run's guards: the history they see and their verdicts."""

from __future__ import annotations

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
        result: Any = None,
        error: dict[str, Any] | None = None,
        refused: str | None = None,
    ) -> None:
        entry: dict[str, Any] = {"tool": tool, "arguments": arguments, "refused": refused}
        if error is not None:
            entry["error"] = error
        else:
            entry["result"] = result
        self.history.append(entry)

    async def close(self) -> None:
        await self._process.stop()


def guards_for(session: RunSession, scripts: ScriptCoordinator | None) -> RunGuards | None:
    """The run's guards, when its workflow has any (their process starts at the first
    call that has a guard; without a script coordinator to launch it, every guard refuses)."""
    if not session.workflow.guard_names:
        return None
    return RunGuards(session, GuardProcess(scripts, session))
