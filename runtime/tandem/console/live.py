"""Live updates as server-sent events: the runs page hears of every run made or changed,
a run's page of every event it writes. Each event only says *that* something changed;
the page then fetches its fragment again, with its own filters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response
from tandem_sdk.errors import TandemError

from tandem.cluster import changes as elsewhere
from tandem.runs import RunManager
from tandem.store import FINAL, RunStore

log = logging.getLogger(__name__)
# A comment line this often keeps proxies and browsers from closing an idle stream.
PING_S = 15
# How often an open runs page looks for changes other daemons sharing the store made.
LOOK_S = 1.0


class Changes:
    """Runs made or changed, for each runs page open now: this daemon's from the store's
    watchers at once, every daemon's (all sharing the store) by a look every LOOK_S while
    a page is open."""

    def __init__(self, store: RunStore) -> None:
        self._queues: list[asyncio.Queue[str]] = []
        self._store = store
        self._looking: asyncio.Task[None] | None = None
        store.watchers.append(self._changed)

    def close(self) -> None:
        if self._changed in self._store.watchers:
            self._store.watchers.remove(self._changed)
        self._stop_looking()

    def _changed(self, run_id: str) -> None:
        for queue in self._queues:
            queue.put_nowait(run_id)

    @contextlib.contextmanager
    def subscribed(self) -> Iterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.append(queue)
        if self._looking is None:
            self._looking = asyncio.ensure_future(self._look())
        try:
            yield queue
        finally:
            self._queues.remove(queue)
            if not self._queues:
                self._stop_looking()

    def _stop_looking(self) -> None:
        if self._looking is not None:
            self._looking.cancel()
            self._looking = None

    async def _look(self) -> None:
        """Changes any daemon makes, while a runs page is open (the store away: the next
        look that works compares with the last that did)."""
        last: elsewhere.Look | None = None
        while True:
            now: elsewhere.Look | None
            try:
                now = elsewhere.look(self._store)
            except TandemError:
                now = last
            if last is not None and now is not None:
                run_id = elsewhere.changed(last, now)
                if run_id is not None:
                    self._changed(run_id)
            last = now
            await asyncio.sleep(LOOK_S)


STOPPED = object()  # what _until gives once the console stops


async def _until(get: Callable[[], Awaitable[Any]], stopping: asyncio.Event) -> Any:
    """What `get` gives, or STOPPED once the console stops."""
    getting = asyncio.ensure_future(get())
    ending = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((getting, ending), return_when=asyncio.FIRST_COMPLETED)
    finally:
        ending.cancel()
    if not getting.done():
        getting.cancel()
        return STOPPED
    return getting.result()


def runs_stream(changes: Changes, stopping: asyncio.Event) -> Response:
    async def events() -> AsyncIterator[ServerSentEvent]:
        with changes.subscribed() as queue:
            while (run_id := await _until(queue.get, stopping)) is not STOPPED:
                while not queue.empty():  # a burst of changes is one refresh
                    queue.get_nowait()
                yield ServerSentEvent(data=str(run_id), event="runs")

    return EventSourceResponse(events(), ping=PING_S)


def run_stream(runs: RunManager, run_id: str, stopping: asyncio.Event) -> Response:
    """The run's events as they happen, wherever it runs (RunManager.watch: this daemon's
    run live, another daemon's from the store); 204 (the browser stops asking) for a run
    that has ended or does not exist."""
    record = runs.store.get(run_id, events=False)
    if record is None or record.status in FINAL:
        return Response(status_code=204)

    async def events() -> AsyncIterator[ServerSentEvent]:
        written: asyncio.Queue[bool] = asyncio.Queue()  # True: events written; False: ended

        async def follow() -> None:
            try:
                async for _ in runs.watch(run_id):
                    written.put_nowait(True)
            except TandemError as error:  # the store away: the page stops following
                log.warning("the console stopped following run %s: %s", run_id, error)
            finally:
                written.put_nowait(False)

        # A task of its own, so a page that goes away ends the watch with it.
        following = asyncio.ensure_future(follow())
        try:
            while (more := await _until(written.get, stopping)) is not STOPPED:
                while more and not written.empty():  # a burst of events is one refresh
                    more = written.get_nowait()
                yield ServerSentEvent(data=run_id, event="trace" if more else "ended")
                if not more:
                    return
        finally:
            following.cancel()

    return EventSourceResponse(events(), ping=PING_S)
