"""Limits that hold before a request is authenticated: the listener faces the internet, and
no number of connections that never finish may starve the daemon.

- **Connections**: at most `max_connections` at once; one more is closed as soon as it is
  accepted, so it holds a descriptor for a moment only.
- **Headers**: a connection whose request head is not complete `header_timeout_s` after
  it opened (or after its last response, when kept alive) is closed. uvicorn itself only
  times out a connection that is idle between requests, not one that is mid-head.
- **Bodies**: read under a deadline and against a budget shared by every connection
  (`BodyBudget`), so bodies that trickle in cannot hold memory without bound.
- **Descriptors**: `raise_descriptor_limit` lifts the soft limit to the hard one at start,
  and the connection cap is lowered where needed to keep a reserve for Control, runs and
  plugins.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from tandem.config import ListenerLimits

log = logging.getLogger(__name__)

# Descriptors kept for everything but the listener: Control clients, run sockets, plugin
# links, the store, the zygote.
DESCRIPTOR_RESERVE = 512


def raise_descriptor_limit() -> int:
    """Lift the soft descriptor limit to the hard one; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("could not raise the descriptor limit from %d: %s", soft, error)
    return soft


def connection_cap(wanted: int, descriptor_limit: int) -> int:
    """The listener's connection cap, leaving DESCRIPTOR_RESERVE descriptors to the rest."""
    room = max(descriptor_limit - DESCRIPTOR_RESERVE, 16)
    if wanted > room:
        log.warning(
            "http: %d connections would leave too few of %d descriptors for Control, runs and"
            " plugins; the listener takes at most %d",
            wanted,
            descriptor_limit,
            room,
        )
    return min(wanted, room)


class BodyBudget:
    """Bytes of request bodies held across connections; a body that would go over is refused
    (503) instead of waiting for memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


def guarded_protocol(limits: ListenerLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the connection cap and the header deadline."""

    class GuardedProtocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None
        _cycle_seen: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections:
                # Refused before uvicorn counts it: the descriptor is freed at once.
                transport.abort()
                return
            super().connection_made(transport)
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.transport is None:
                return  # refused in connection_made
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not self._cycle_seen:  # a request head was parsed
                self._cycle_seen = self.cycle
                self._disarm_head_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_deadline()  # the next request on a kept-alive connection

        def _arm_head_deadline(self) -> None:
            self._disarm_head_deadline()
            self._head_deadline = self.loop.call_later(limits.header_timeout_s, self._head_too_slow)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    return GuardedProtocol


def protocol_settings(limits: ListenerLimits) -> dict[str, Any]:
    """uvicorn.Config settings for the guarded listener."""
    return {"http": guarded_protocol(limits), "h11_max_incomplete_event_size": 64 * 1024}
