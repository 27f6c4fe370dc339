"""A run's calls held for a person's decision: how one is held, traced and answered, and
who else (the observer, e.g. Slack) is told of it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tandem_sdk.errors import ToolError

from .store import RunStore

if TYPE_CHECKING:
    from .session import RunSession

log = logging.getLogger(__name__)

NO_DECISION = "no decision before the deadline"  # the reason of a held call that timed out
RUN_ENDED = "the run ended before a decision"  # the reason given to the observer on cancel


@dataclass(frozen=True)
class HeldCall:
    """A call waiting for a person: its tool.call event's seq, its number in the trace
    (None for a subagent's call), and when its wait ends (unix time)."""

    seq: int
    number: int | None
    tool: str
    arguments: dict[str, Any]
    deadline: float


class ApprovalObserver(Protocol):
    """Told of every held call and of how it ended (the host announces them elsewhere).
    Called on the run's loop; neither may block or raise."""

    def held(self, session: RunSession, call: HeldCall) -> None: ...

    def settled(
        self, session: RunSession, call: HeldCall, approved: bool, reason: str, by: str | None
    ) -> None: ...


class Approvals:
    """The calls of one run waiting for a person's decision, by their tool.call event's
    seq, with the number each has in the trace (None for a subagent's call, which has none
    there) and who decided it, when known."""

    def __init__(self, session: RunSession, store: RunStore) -> None:
        self._session = session
        self._store = store
        self.waiting: dict[int, asyncio.Future[tuple[bool, str]]] = {}
        self._numbers: dict[int, int | None] = {}
        self._deciders: dict[int, str] = {}

    async def hold(
        self, seq: int, number: int | None, tool: str, arguments: dict[str, Any]
    ) -> None:
        """Hold the call until a person decides (`tandem approve|deny`, or the observer's
        way, e.g. Slack); a denial, or no decision in time, is a ToolError of type
        `denied` that the coordinator sees. The call is named by its number in the trace;
        a subagent's call, unnumbered there, is answered with the run's other waiting
        calls (no CALL)."""
        session = self._session
        future: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        self.waiting[seq] = future
        self._numbers[seq] = number
        timeout = self._timeout()
        which = f" {number}" if number is not None else ""
        named: dict[str, Any] = {"call": number} if number is not None else {}
        session.emit(
            "approval.waiting",
            **named,
            tool=tool,
            timeout_s=round(timeout, 1),
            decide=f"tandem approve {session.id}{which}  |  tandem deny {session.id}{which} REASON",
        )
        self._store.set_status(session.id, "waiting")
        held = HeldCall(seq, number, tool, arguments, time.time() + timeout)
        self._observe("held", held)
        decided = True
        try:
            async with asyncio.timeout(timeout):
                approved, reason = await future
        except TimeoutError:
            decided, approved, reason = False, False, NO_DECISION
        except asyncio.CancelledError:
            # The run is cancelled: no decision, but the observer still learns the end
            # (Slack takes the buttons off the message).
            self._observe("settled", held, False, RUN_ENDED, None)
            raise
        finally:
            self.waiting.pop(seq, None)
            self._numbers.pop(seq, None)
            by = self._deciders.pop(seq, None)
            if not self.waiting and session.active:
                self._store.set_status(session.id, "running")
        who: dict[str, Any] = {"by": by} if by else {}
        session.emit(
            "approval.decided", **named, tool=tool, approved=approved, reason=reason, **who
        )
        self._observe("settled", held, approved, reason, by)
        if not approved:
            said = f"a person denied this call: {reason}" if decided else f"not run: {reason}"
            raise ToolError(said, tool=tool, type="denied")

    def _timeout(self) -> float:
        """The configured wait, and in any case ending a second before the run's own limit,
        so the coordinator learns of the denial before the run times out."""
        session = self._session
        configured = session.workflow.spec.approvals.timeout_s
        left = None if session.deadline is None else session.deadline - time.monotonic() - 1.0
        if session.mode.mcp:  # no run deadline: the call's own, `timeout_s`, bounds the wait
            left = session.limits.timeout_s - 1.0
        bounds = [b for b in (configured, left) if b is not None]
        return max(min(bounds), 0.1) if bounds else 3600.0

    def decide(
        self, number: int | None, approved: bool, reason: str, by: str | None = None
    ) -> list[int]:
        """Answer the waiting call numbered `number` in the trace (every waiting call when
        None); the numbers answered, 0 standing for a subagent's call. `by` names who
        answered, in the trace's approval.decided event."""
        waiting = sorted(seq for seq, n in self._numbers.items() if number is None or n == number)
        return [
            self._numbers.get(seq) or 0
            for seq in waiting
            if self.decide_held(seq, approved, reason, by)
        ]

    def decide_held(self, seq: int, approved: bool, reason: str, by: str | None = None) -> bool:
        """Answer the call held at tool.call `seq`; False when it is not waiting (any more).
        `by`: who decided, kept in the trace's approval.decided event."""
        future = self.waiting.get(seq)
        if future is None or future.done():
            return False
        if by:
            self._deciders[seq] = by
        future.set_result((approved, reason))
        return True

    def _observe(self, what: str, *args: Any) -> None:
        """Tell the session's observer; its failure is logged, never the run's."""
        observer = self._session.observer
        if observer is None:
            return
        try:
            getattr(observer, what)(self._session, *args)
        except Exception:
            log.exception("run %s: the approval observer failed on %s", self._session.id, what)
