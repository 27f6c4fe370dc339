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

    async def main() -> None:
        work = asyncio.ensure_future(in_thread(release.wait, 10))
        for _ in range(5):  # the loop turns while the thread blocks...
            await asyncio.sleep(0.01)
        assert not work.done()  # ...which it could not if the work ran on it
        release.set()
        assert await work is True

    asyncio.run(main())


def test_a_cancellation_waits_for_the_work_to_end() -> None:
    started, finished = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    async def main(cancels: int) -> None:
        started.clear()
        finished.clear()
        task = asyncio.ensure_future(in_thread(work))
        while not started.is_set():
            await asyncio.sleep(0.005)
        for _ in range(cancels):  # a timeout and a `runs cancel` may both arrive
            task.cancel()
            await asyncio.sleep(0.05)
        with pytest.raises(asyncio.CancelledError):
            await task
        # Only now does the caller's cleanup run: the work has ended, not still going.
        assert finished.is_set()

    asyncio.run(main(cancels=1))
    asyncio.run(main(cancels=3))


def test_the_work_s_error_reaches_the_caller() -> None:
    def fail() -> None:
        raise PermissionError("no")

    with pytest.raises(PermissionError, match="no"):
        asyncio.run(in_thread(fail))
