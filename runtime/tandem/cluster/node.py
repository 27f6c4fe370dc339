"""This host as a member of the cluster of hosts sharing one store: its id, its settings,
and whether it takes runs from the shared queue (a daemon does; a host embedded in one
`tandem` command runs only its own)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from tandem.config import ClusterSettings
from tandem.store import RunStore

from . import members


class Node:
    def __init__(
        self, store: RunStore, settings: ClusterSettings, state_dir: Path, *, daemon: bool
    ) -> None:
        self.id = secrets.token_hex(6)  # one per start: a restarted daemon is a new member
        self.store = store
        self.settings = settings
        self.state_dir = state_dir
        self.role = "daemon" if daemon else "embedded"
        self.claims = daemon

    def lease_until(self, now: float) -> float:
        return now + self.settings.lease_s

    def join(self) -> members.Reaped:
        """Register, then reap the members that are gone (a previous daemon of this machine
        whose process is gone, once it missed two heartbeats), so their runs end
        `interrupted` now."""
        now = time.time()
        members.register(self.store, self.id, str(self.state_dir), self.role, now)
        settings = self.settings
        return members.reap(self.store, self.id, settings.lease_s, now, beat_s=settings.heartbeat_s)

    def leave(self) -> None:
        members.stopped(self.store, self.id, time.time())
