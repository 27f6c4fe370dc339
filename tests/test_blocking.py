"""Blocking work off the event loop: the loop keeps serving while it runs, and a
cancellation never leaves the work half-seen by the caller's cleanup."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from tandem.blocking import in_thread


def test_the_loop_keeps_serving_while_the_work_blocks() -> None:
    release = threading.Event()

    async def main() -> int:
        work = asyncio.ensure_future(in_thread(release.wait, 10))
        ticks = 0
        while ticks < 5:  # the loop turns while the thread blocks
            await asyncio.sleep(0.01)
            ticks += 1
        assert not work.done()
        release.set()
        assert await work is True
        return ticks

    assert asyncio.run(main()) == 5


def test_a_cancellation_waits_for_the_work_to_end() -> None:
    started, finished = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        time.sleep(0.2)
        finished.set()

    async def main() -> None:
        task = asyncio.ensure_future(in_thread(work))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Only now does the caller's cleanup run: the work has ended, not still going.
        assert finished.is_set()

    asyncio.run(main())


def test_the_work_s_error_reaches_the_caller() -> None:
    def fail() -> None:
        raise PermissionError("no")

    with pytest.raises(PermissionError, match="no"):
        asyncio.run(in_thread(fail))
