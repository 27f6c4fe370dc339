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

from tandem.runs import RunManager
from tandem.store import FINAL, RunStore

log = logging.getLogger(__name__)
# A comment line this often keeps proxies and browsers from closing an idle stream.
PING_S = 15


class Changes:
    """Runs made or changed, from the store, for each runs page open now."""

    def __init__(self, store: RunStore) -> None:
        self._queues: list[asyncio.Queue[str]] = []
        self._store = store
        store.watchers.append(self._changed)

    def close(self) -> None:
        if self._changed in self._store.watchers:
            self._store.watchers.remove(self._changed)

    def _changed(self, run_id: str) -> None:
        for queue in self._queues:
            queue.put_nowait(run_id)

    @contextlib.contextmanager
    def subscribed(self) -> Iterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.append(queue)
        try:
            yield queue
        finally:
            self._queues.remove(queue)


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
        changes: asyncio.Queue[bool] = asyncio.Queue()  # True: events written; False: ended

        async def follow() -> None:
            try:
                async for _ in runs.watch(run_id):
                    changes.put_nowait(True)
            except TandemError as error:  # the store away: the page stops following
                log.warning("the console stopped following run %s: %s", run_id, error)
            finally:
                changes.put_nowait(False)

        # A task of its own, so a page that goes away ends the watch with it.
        following = asyncio.ensure_future(follow())
        try:
            while (more := await _until(changes.get, stopping)) is not STOPPED:
                while more and not changes.empty():  # a burst of events is one refresh
                    more = changes.get_nowait()
                yield ServerSentEvent(data=run_id, event="trace" if more else "ended")
                if not more:
                    return
        finally:
            following.cancel()

    return EventSourceResponse(events(), ping=PING_S)
