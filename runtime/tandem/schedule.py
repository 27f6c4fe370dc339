"""Schedule triggers: fire a run of each workflow whose cron expression comes due.

Cron has five fields (minute precision) or six, the sixth being seconds (croniter's
convention). Fires missed while the daemon was down are not caught up: a schedule says
"run every so often while serving", not "exactly once per slot".
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from croniter import croniter

from tandem.runs import RunManager

log = logging.getLogger(__name__)
# Re-read the schedules at least this often, so hot-reloaded workflows are picked up.
MAX_SLEEP_S = 5.0


class Scheduler:
    def __init__(self, runs: RunManager) -> None:
        self._runs = runs
        self._since = datetime.now(UTC)

    def due(self, now: datetime) -> list[tuple[str, str, datetime]]:
        """(workflow, cron, slot) for every slot in (since, now]."""
        fires = []
        for state in self._runs.registry.states():
            workflow = state.current
            if workflow is None:
                continue
            for trigger in workflow.spec.triggers:
                if trigger.schedule is None:
                    continue
                slot = croniter(trigger.schedule, self._since).get_next(datetime)
                if slot <= now:
                    fires.append((workflow.name, trigger.schedule, slot))
        return fires

    def next_wake(self, now: datetime) -> float:
        slots = [
            croniter(t.schedule, now).get_next(datetime)
            for s in self._runs.registry.states()
            if s.current is not None
            for t in s.current.spec.triggers
            if t.schedule is not None
        ]
        if not slots:
            return MAX_SLEEP_S
        wait: float = (min(slots) - now).total_seconds()
        return max(0.0, min(MAX_SLEEP_S, wait))

    async def run_forever(self) -> None:
        while True:
            now = datetime.now(UTC)
            for workflow, cron, slot in self.due(now):
                payload = {"trigger": "schedule", "schedule": cron, "slot": slot.isoformat()}
                try:
                    session = self._runs.trigger(workflow, payload)
                except Exception as error:  # one workflow's failure must not stop the others
                    log.warning("scheduled run of %s not started: %s", workflow, error)
                    continue
                log.info("scheduled run %s of %s (%s)", session.id, workflow, cron)
            self._since = now
            await asyncio.sleep(self.next_wake(now) + 0.001)
