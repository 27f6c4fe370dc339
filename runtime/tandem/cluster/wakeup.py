"""PostgreSQL's LISTEN/NOTIFY as a wake-up hint between daemons: a daemon that leaves a run
in the shared queue (no room to start it) notifies a channel; every daemon listens on a
connection of its own, in a thread, and looks at the queue at once when told. Only a hint:
the poll stays behind it, so a notification lost (a listener reconnecting, a server
restarted) only delays a claim to the next poll. A command for another daemon (cancel,
approve, deny) is a hint too."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from tandem.store import RunStore, StoreError

log = logging.getLogger(__name__)
CHANNEL = "tandem_wake"
# Its bound on a connection attempt (the store's; a stop waits for one to end).
CONNECT_TIMEOUT_S = 5
# How long the listener waits for a notification before it checks whether it should stop.
WAIT_S = 1.0
# After a lost connection, how long before the next attempt to listen again.
RETRY_S = 1.0
# Idle waits between two `SELECT 1`: a connection that only listens sends nothing, so a
# server gone away without a word (a partition) is found by the next statement, cut by
# the store's TCP timeout, beside its keepalives.
PING_EVERY = 5


def hint(store: RunStore) -> None:
    """Tell the other daemons to look at the store now: a run waits in the shared queue, or
    a command waits for its daemon (PostgreSQL only). Never fails the caller: what waits
    is in the store, and the poll finds it anyway."""
    if store.dialect != "postgresql":
        return
    try:
        store._run("SELECT pg_notify(?, '')", (CHANNEL,))
    except StoreError as error:
        log.debug("no wake-up hint: %s", error)


class Listener:
    """LISTENs on `url` in a thread; `wake` is called on the event loop for each
    notification, and after each (re)connection (a notification may have been missed)."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]):
        self._url = url
        self._loop = loop
        self._wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="tandem-wakeup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT_S + CONNECT_TIMEOUT_S)

    def _listen(self) -> None:
        import psycopg  # only for a store on PostgreSQL

        from tandem.store.postgres import connection_options

        # The store's own: keepalives and a TCP timeout notice a silent server.
        options = connection_options(self._url, 0)
        failing = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, **options) as db:
                    db.execute(f"LISTEN {CHANNEL}")
                    if failing:
                        log.info("listening for queued runs again")
                    failing = False
                    self._notify()
                    idle = 0
                    while not self._stop.is_set():
                        idle += 1
                        for _ in db.notifies(timeout=WAIT_S):
                            self._notify()
                            idle = 0
                        if idle >= PING_EVERY:
                            db.execute("SELECT 1")
                            idle = 0
            except psycopg.Error as error:
                if not failing:
                    log.warning("not listening for queued runs (the poll goes on): %s", error)
                failing = True
                self._stop.wait(RETRY_S)

    def _notify(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop closed: the host is gone
            self._stop.set()
