"""Watching a run from the CLI through a daemon that may go away: when the Control socket
stops answering, wait a few seconds for a daemon to come back and, if it still knows the
run, go on where the trace left off; otherwise say so in one line."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from tandem.client import ControlClient
from tandem.store import Event, RunRecord
from tandem.watching import watch_run

RECONNECT_S = 5.0


class DaemonLost(Exception):
    pass


def follow(
    client: ControlClient,
    run_id: str,
    on_event: Callable[[Event], None],
    *,
    reconnect: Callable[[], ControlClient | None] | None = None,
) -> tuple[ControlClient, RunRecord]:
    """Pass every event of the run to `on_event`, once, then return its record (and the
    client that answered last). DaemonLost when no daemon comes back in time;
    KeyboardInterrupt on Ctrl-C (see tandem.watching)."""
    last, first = 0, client

    def once(event: Event) -> None:  # a watch after a reconnect starts at the first event
        nonlocal last
        if event.seq > last:
            last = event.seq
            on_event(event)

    while True:
        try:
            watch_run(client, run_id, once)
            return client, client.run(run_id)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or reconnect is None:
                raise
            if client is not first:
                client.close()  # the caller closes only the client it gave
            client = _back(reconnect, run_id, error)


def _back(
    reconnect: Callable[[], ControlClient | None], run_id: str, error: grpc.RpcError
) -> ControlClient:
    deadline = time.monotonic() + RECONNECT_S
    while time.monotonic() < deadline:
        time.sleep(0.25)  # polling a socket that may reappear: nothing to wait on instead
        client = reconnect()
        if client is None:
            continue
        try:
            client.run(run_id)
        except grpc.RpcError:
            client.close()
            raise DaemonLost(f"the daemon came back without run {run_id}") from None
        return client
    raise DaemonLost(
        f"lost the tandem daemon ({error.details()}) and it did not come back within "
        f"{RECONNECT_S:g}s; run {run_id} may still finish: `tandem runs show {run_id}` later"
    )
