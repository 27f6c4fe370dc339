"""This host as a member of the cluster of hosts sharing one store: its id, its settings,
and whether it takes runs from the shared queue (a daemon does; a host embedded in one
`tandem` command runs only its own)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from tandem.config import ClusterSettings
from tandem.store import RunStore

from . import members


class Node:
    def __init__(
        self,
        store: RunStore,
        settings: ClusterSettings,
        state_dir: Path,
        *,
        daemon: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: this machine's clock (unix seconds)."""
        self.id = secrets.token_hex(6)  # one per start: a restarted daemon is a new member
        self.store = store
        self.settings = settings
        self.state_dir = state_dir
        self.role = "daemon" if daemon else "embedded"
        self.claims = daemon
        self._clock = clock
        self._skew = 0.0  # the store's clock less this machine's

    def now(self) -> float:
        """The store's time, for heartbeats, leases and what is compared with them: every
        daemon on one clock, however the machines' clocks differ."""
        return self._clock() + self._skew

    def sync_clock(self) -> None:
        """Read the store's clock: PostgreSQL's (a daemon's heartbeat and leases are judged
        by the others against it); a SQLite store is on this machine, whose clock it is."""
        if self.store.dialect != "postgresql":
            return
        before = self._clock()
        row = self.store._run(
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
        ).fetchone()
        self._skew = float(row[0]) - (before + self._clock()) / 2

    def lease_until(self, now: float) -> float:
        return now + self.settings.lease_s

    def join(self) -> members.Reaped:
        """Register, then reap the members proven dead on this machine (a previous daemon
        whose process is gone), so their runs end `interrupted` now. No member is judged by
        its heartbeat here: after an outage of the store every heartbeat is old, and the
        heartbeat reaps by lease only once the others had a lease's time to beat."""
        self.sync_clock()
        now = self.now()
        members.register(self.store, self.id, str(self.state_dir), self.role, now)
        return members.reap(self.store, self.id, self.settings.lease_s, now, leases=False)

    def leave(self) -> None:
        members.stopped(self.store, self.id, self.now())
