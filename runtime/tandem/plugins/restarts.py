"""When to restart a tool provider that exited (a plugin process, an MCP server), and
whether it is in a crash loop: the one copy of that bookkeeping."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from tandem_sdk.errors import ToolUnavailable

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 10.0
# A process that answered a call, or stayed up this long, was healthy: its exit restarts
# it quickly. Backoff grows only for a process that dies before it can serve.
STABLE_AFTER_S = 30.0
# This many exits within CRASH_LOOP_WINDOW_S is a crash loop, reported at ERROR.
CRASH_LOOP_EXITS = 5
CRASH_LOOP_WINDOW_S = 60.0


class Restarts:
    """Exits of one provider: the next restart's time, its backoff, and the crash loop."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what = what  # "plugin slack", "mcp server git": how the log names it
        self.log = log
        self.crash_loop = False
        self.next_start_at = 0.0  # monotonic time of the next restart attempt
        self.backoff = BACKOFF_MIN_S
        self._exits: deque[float] = deque(maxlen=CRASH_LOOP_EXITS)

    def healthy(self) -> None:
        """The process that exited had served (or stayed up long): restart it quickly."""
        self.backoff = BACKOFF_MIN_S

    def note_exit(self, last_error: str | None) -> float:
        """Record an exit or failed start and schedule the next attempt; returns how long
        to wait before it."""
        now = time.monotonic()
        self._exits.append(now)
        wait, self.backoff = self.backoff, min(self.backoff * 2, BACKOFF_MAX_S)
        self.next_start_at = now + wait
        window = now - self._exits[0]
        looping = len(self._exits) == CRASH_LOOP_EXITS and window < CRASH_LOOP_WINDOW_S
        if looping and not self.crash_loop:
            self.log.error(
                "%s is in a crash loop: %d exits in %.0fs; restarting with backoff "
                "up to %gs. Last error: %s",
                self.what,
                CRASH_LOOP_EXITS,
                window,
                BACKOFF_MAX_S,
                last_error,
            )
        elif not looping and self.crash_loop:
            self.log.info("%s is out of its crash loop", self.what)
        self.crash_loop = looping
        self.log.warning("%s %s; restarting in %.1fs", self.what, last_error, wait)
        return wait

    def unreachable_by(self, deadline: float) -> bool:
        """In a crash loop whose next restart comes after `deadline`: fail calls at once."""
        return self.crash_loop and self.next_start_at > deadline

    async def await_restart(
        self,
        up: asyncio.Event,
        *,
        tool: str,
        who: str,
        deadline: float,
        budget: float,
        stopping: bool,
        last_error: Callable[[], str | None],
    ) -> None:
        """Wait for the provider `who` ("plugin 'slack'") to be `up` again, for a call of
        `tool` due by `deadline` (`budget` seconds in all); ToolUnavailable saying why when
        it is `stopping`, in a crash loop past the deadline, or not back in time."""
        if stopping:
            raise ToolUnavailable(f"{tool}: {who} is stopping", tool=tool)
        if self.unreachable_by(deadline):
            raise ToolUnavailable(
                f"{tool}: {who} is in a crash loop, next restart in "
                f"{self.next_start_at - time.monotonic():.1f}s: {last_error()}",
                tool=tool,
            )
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                await up.wait()
        except TimeoutError:
            raise ToolUnavailable(
                f"{tool}: {who} is down and did not come back within {budget:g}s ({last_error()})",
                tool=tool,
            ) from None
