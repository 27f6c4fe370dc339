"""Schedule triggers: fire a run of each workflow whose cron expression comes due.

Cron has five fields (minute precision) or six, the sixth being seconds (croniter's
convention). Fires missed while the daemon was down are not caught up: a schedule says
"run every so often while serving". Daemons sharing a store each load the schedule; a slot
is fired by the one whose row for it in `schedule_slots` is made first, so it fires once.

Expressions are checked when a workflow loads (`tandem.cron`); should one still fail to
give a slot, that schedule alone is skipped and logged, and every other keeps firing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from tandem.cluster import slots
from tandem.cron import next_slot
from tandem.runs import RunManager
from tandem.store import StoreError

log = logging.getLogger(__name__)
# Re-read the schedules at least this often, so hot-reloaded workflows are picked up.
MAX_SLEEP_S = 5.0


class Scheduler:
    def __init__(self, runs: RunManager, *, once_per_slot: bool = True) -> None:
        """`once_per_slot`: fire a slot only when this daemon takes it in the store (the
        daemons sharing it fire each slot once); off, every due slot fires here."""
        self._runs = runs
        self._once_per_slot = once_per_slot
        self._since = datetime.now(UTC)
        self._broken: set[tuple[str, str]] = set()  # reported once each

    def _schedules(self) -> Iterator[tuple[str, str]]:
        for state in self._runs.registry.states():
            workflow = state.current
            if workflow is None:
                continue
            for trigger in workflow.spec.triggers:
                if trigger.schedule is not None:
                    yield workflow.name, trigger.schedule

    def _next(self, workflow: str, cron: str, after: datetime) -> datetime | None:
        """The next slot of one schedule, or None (logged once) when it cannot say."""
        try:
            slot = next_slot(cron, after)
        except Exception as error:  # one bad schedule must never stop the others
            if (workflow, cron) not in self._broken:
                self._broken.add((workflow, cron))
                log.error(
                    "schedule %r of workflow %s skipped: %s: %s",
                    cron,
                    workflow,
                    type(error).__name__,
                    error,
                )
            return None
        self._broken.discard((workflow, cron))
        return slot

    def due(self, now: datetime) -> list[tuple[str, str, datetime]]:
        """(workflow, cron, slot) for every schedule with a slot in (since, now]."""
        fires = []
        for workflow, cron in self._schedules():
            slot = self._next(workflow, cron, self._since)
            if slot is not None and slot <= now:
                fires.append((workflow, cron, slot))
        return fires

    def next_wake(self, now: datetime) -> float:
        slots = [self._next(w, c, now) for w, c in self._schedules()]
        known = [s for s in slots if s is not None]
        if not known:
            return MAX_SLEEP_S
        wait: float = (min(known) - now).total_seconds()
        return max(0.0, min(MAX_SLEEP_S, wait))

    def fire_due(self, now: datetime) -> None:
        for workflow, cron, slot in self.due(now):
            if self._once_per_slot and not self._take(workflow, cron, slot):
                continue  # another daemon fires this slot
            payload = {"trigger": "schedule", "schedule": cron, "slot": slot.isoformat()}
            try:
                session = self._runs.trigger(workflow, payload)
            except Exception as error:  # one workflow's failure must not stop the others
                log.warning("scheduled run of %s not started: %s", workflow, error)
                continue
            log.info("scheduled run %s of %s (%s)", session.id, workflow, cron)
        self._since = now

    def _take(self, workflow: str, cron: str, slot: datetime) -> bool:
        try:
            node = self._runs.node
            return slots.take(
                self._runs.store, workflow, cron, slot.isoformat(), node.id, node.now()
            )
        except StoreError as error:
            log.warning("scheduled run of %s not started: %s", workflow, error.message)
            return False

    async def run_forever(self) -> None:
        while True:
            now = datetime.now(UTC)
            self.fire_due(now)
            await asyncio.sleep(self.next_wake(now) + 0.001)
