"""Watching a run to its end from a command a person may interrupt. Ctrl-C must not raise
KeyboardInterrupt inside grpc: landing in one of its lock waits, it leaves the lock half
released (`RuntimeError: cannot release un-acquired lock`) instead of unwinding. While a
run is watched SIGINT only cancels the stream; KeyboardInterrupt is raised after, here."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import grpc

from tandem.client import ControlClient, EventStream
from tandem.store import Event


def watch_run(
    client: ControlClient, run_id: str, on_event: Callable[[Event], None] = lambda _: None
) -> None:
    """Pass each event of the run to `on_event` until the run ends. KeyboardInterrupt when
    SIGINT came meanwhile; RpcError as the stream raised it otherwise."""
    if threading.current_thread() is not threading.main_thread():
        for event in client.watch(run_id):  # signals reach the main thread only
            on_event(event)
        return
    interrupted = False
    stream: EventStream | None = None

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        if stream is not None:
            stream.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        stream = client.watch(run_id)
        if interrupted:  # before the stream was there to cancel
            stream.cancel()
        for event in stream:
            on_event(event)
    except grpc.RpcError as error:
        if not (interrupted and error.code() == grpc.StatusCode.CANCELLED):
            raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt
