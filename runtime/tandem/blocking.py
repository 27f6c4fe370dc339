"""Blocking work (file system metadata, mostly) off the daemon's event loop, so a run's
folder being made or removed never delays a Trigger, a Health or another run's call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in the loop's thread pool. A cancellation (however many
    arrive) waits for it to end before it propagates: what the function made or removed is
    then settled, so the caller's cleanup neither races it nor misses what it left."""
    work = asyncio.create_task(asyncio.to_thread(function, *args, **kwargs))
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait([work])  # a cancelled wait leaves `work` running
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        work.exception()  # retrieved: the cancellation is what the caller learns
        raise asyncio.CancelledError
    return work.result()
