"""A host's beat in the cluster: every poll it carries out the commands other daemons left
for it and takes queued runs while it has room; every heartbeat it says it lives, renews
its runs' leases (cancelling any copy another daemon took over) and reaps the members that
stopped heartbeating."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from . import claims, commands, members, remote

if TYPE_CHECKING:
    from tandem.runs import RunManager

log = logging.getLogger(__name__)
# How often an idle daemon with room looks at the shared queue and its commands: the
# wake-up between daemons (PostgreSQL's LISTEN/NOTIFY may make it sooner, never later).
POLL_S = 0.25
SWEEP_S = 3600.0  # how often the registry, commands and schedule slots are swept


class Heartbeat:
    def __init__(self, runs: RunManager) -> None:
        self.runs = runs
        self.node = runs.node
        self._next_beat = 0.0
        self._next_sweep = 0.0
        self._failing = False
        # After the store was away, every member's heartbeat is old: reap none before this,
        # a lease after the last failed beat, so the others (back too) beat first.
        self._reap_after = 0.0

    async def run_forever(self) -> None:
        poll = min(POLL_S, self.node.settings.heartbeat_s)
        while True:
            try:
                self.tick(time.time())
                if self._failing:
                    log.info("the run store answers again")
                self._failing = False
            except Exception as error:  # the store may be away a while: say so once
                self._reap_after = time.time() + self.node.settings.lease_s
                if not self._failing:
                    log.error("cluster heartbeat failed: %s", error)
                self._failing = True
            await asyncio.sleep(poll)

    def tick(self, now: float) -> None:
        store, node = self.runs.store, self.node
        for command in commands.pending(store, node.id):
            remote.carry_out(self.runs, command)
        if now >= self._next_beat:
            self._next_beat = now + node.settings.heartbeat_s
            members.beat(store, node.id, self.runs.active, now)
            self.runs.keep_only(claims.renew(store, node.id, node.lease_until(now)))
            reaped = members.Reaped([], [], [])
            if now >= self._reap_after:
                reaped = members.reap(store, node.id, node.settings.lease_s, now)
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
