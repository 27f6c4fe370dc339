"""A host's beat in the cluster: every poll it carries out the commands other daemons left
for it and takes queued runs while it has room; every heartbeat it says it lives, renews
its runs' leases (cancelling any copy another daemon took over) and reaps the members that
stopped heartbeating."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from . import claims, commands, members, remote, wakeup

if TYPE_CHECKING:
    from tandem.runs import RunManager

log = logging.getLogger(__name__)
SWEEP_S = 3600.0  # how often the registry, commands and schedule slots are swept


class Heartbeat:
    def __init__(self, runs: RunManager) -> None:
        self.runs = runs
        self.node = runs.node
        self._next_beat = 0.0
        self._next_sweep = 0.0
        self._failing = False
        # At start, and after the store was away, every member's heartbeat may be old: reap
        # none by lease before this, a lease after the start or the last failed beat, so the
        # others (back too) beat first.
        self._reap_after = self.node.now() + self.node.settings.lease_s
        self._woken = asyncio.Event()

    async def run_forever(self) -> None:
        # How often an idle daemon with room looks at the shared queue and its commands; on
        # PostgreSQL a notification (a run left queued) wakes it sooner, never later.
        poll = min(self.node.settings.poll_s, self.node.settings.heartbeat_s)
        listener = None
        if self.runs.store.dialect == "postgresql" and self.node.claims:
            listener = wakeup.Listener(
                str(self.runs.store.location), asyncio.get_running_loop(), self._woken.set
            )
            listener.start()
        try:
            await self._beat_forever(poll)
        finally:
            if listener is not None:
                await asyncio.to_thread(listener.stop)

    async def _beat_forever(self, poll: float) -> None:
        while True:
            try:
                self.tick(self.node.now())
                if self._failing:
                    log.info("the run store answers again")
                self._failing = False
            except Exception as error:  # the store may be away a while: say so once
                self._reap_after = self.node.now() + self.node.settings.lease_s
                if not self._failing:
                    log.error("cluster heartbeat failed: %s", error)
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), poll)
            self._woken.clear()

    def tick(self, now: float) -> None:
        store, node = self.runs.store, self.node
        for command in commands.pending(store, node.id):
            remote.carry_out(self.runs, command)
        if now >= self._next_beat:
            node.sync_clock()
            now = node.now()
            self._next_beat = now + node.settings.heartbeat_s
            members.beat(store, node.id, self.runs.active, now)
            lease = node.lease_until(now)
            self.runs.keep_only(claims.renew(store, node.id, lease, self.runs.executing))
            leases = now >= self._reap_after
            reaped = members.reap(store, node.id, node.settings.lease_s, now, leases=leases)
            for member in reaped.dead:
                log.warning(
                    "daemon %s stopped heartbeating: %d run(s) interrupted, %d queued run(s)"
                    " back in the shared queue",
                    member.name(),
                    len(reaped.interrupted),
                    len(reaped.requeued),
                )
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_S
            members.sweep(store, now)
        self.runs.admit()
