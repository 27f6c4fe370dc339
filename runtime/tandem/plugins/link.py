"""The host's end of the link to one plugin process: protobuf messages in length-prefixed
frames on the plugin's private unix socket (proto/tandem/v1/plugin.proto), served by the
event loop's own selector.

The link is private to Tandem, so it is not gRPC: a gRPC hop from the daemon cost more
CPU than the rest of a tool call together (gRPC's poller and event-engine threads wake
the event loop several times per call). Here a call is one write, and its answer one
read, on the loop.

A connection carries one call at a time. The link reuses idle connections, opens more as
calls overlap, and holds at most MAX_CALLS calls in flight (more wait for a free one,
within their own timeout). The slots are shared between runs: one run holds at most all
but one of them, so another run's call always finds one free or next to free, and a
freed slot goes to the waiting run that holds fewest. How a call fails tells the caller
whether the process may have seen it:

- NeverSent: it cannot have reached the process: connecting failed, or the write found
  the connection already closed by the process (EPIPE). It may be sent elsewhere.
- LinkBroken: the connection broke after the request was written (the process died, or
  the link was closed under the call). The process may have started the call.
- TimeoutError: no answer within the timeout; the connection is dropped.
- ReplyTooLarge: the answer is over the message limit; it is dropped unread.
- PluginFailure: the plugin answered that it could not serve the request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from google.protobuf.message import DecodeError
from tandem_sdk._pb import plugin_pb2
from tandem_sdk.protocol import FRAME_HEADER, MAX_MESSAGE_BYTES

# As many calls in flight per plugin process as its gRPC server used to have workers.
MAX_CALLS = 8
# While the process starts, how often to try its socket.
CONNECT_RETRY_S = 0.01


class LinkError(Exception):
    pass


class NeverSent(LinkError):
    """The request did not reach the process."""


class LinkBroken(LinkError):
    """The connection broke after the request was sent: the process may have started it."""


class ReplyTooLarge(LinkError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"an answer of {size} bytes is over the message limit of {limit} bytes")
        self.size = size
        self.limit = limit


class PluginFailure(LinkError):
    """The plugin could not serve the request (no such tool, or its server failed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Connection(asyncio.Protocol):
    """One connection to the process, carrying one call at a time."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[bytes] | None = None
        self._closed_by: str | None = None  # why the host closed it, when it did

    @property
    def usable(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if len(buffer) < FRAME_HEADER.size:
            return
        (size,) = FRAME_HEADER.unpack_from(buffer)
        if size > self._limit:
            self._fail(ReplyTooLarge(size, self._limit))
            return
        end = FRAME_HEADER.size + size
        if len(buffer) < end:
            return
        waiter, self._waiter = self._waiter, None
        if waiter is None or len(buffer) > end:
            self._fail(LinkBroken("the plugin sent a frame nobody asked for"))
            return
        reply = bytes(buffer[FRAME_HEADER.size : end])
        buffer.clear()
        if not waiter.done():
            waiter.set_result(reply)

    def eof_received(self) -> bool:
        return False  # close; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if isinstance(exc, BrokenPipeError):
            # Only a write fails with EPIPE: the request never left this process.
            waiter.set_exception(NeverSent("the process had closed the connection"))
        elif self._closed_by is not None:
            waiter.set_exception(LinkBroken(self._closed_by))
        elif exc is not None:
            waiter.set_exception(LinkBroken(f"{type(exc).__name__}: {exc}"))
        else:
            waiter.set_exception(LinkBroken("the process closed the connection"))

    async def call(self, frame: bytes, within_s: float) -> bytes:
        """Send one request frame and wait for its answer."""
        assert self._transport is not None and self._waiter is None
        if self._transport.is_closing():  # a write now would be dropped unsent
            raise NeverSent("the connection closed before the request was written")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bytes] = loop.create_future()
        self._waiter = waiter
        self._transport.write(frame)  # a failed write ends in connection_lost
        timer = loop.call_later(within_s, self._expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self, why: str) -> None:
        """Drop the connection; a call waiting on it fails with LinkBroken(why)."""
        if self._closed_by is None:
            self._closed_by = why
        if self._transport is not None:
            self._transport.abort()

    def _expire(self, waiter: asyncio.Future[bytes]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())
        self.close("the call timed out")

    def _fail(self, error: LinkError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close(str(error))


class _Slots:
    """Who may send a call now: at most `size` calls in flight, at most `size - 1` of them
    one run's (a run's slow calls cannot hold every slot while another run waits), and a
    freed slot goes to the waiting run that holds the fewest, the longest waiting first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._per_run = max(size - 1, 1)
        self._held: dict[str, int] = {}
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []

    async def acquire(self, run: str, within_s: float) -> None:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((run, granted))
        self._grant()
        if granted.done():  # a free slot: no timer to arm
            return
        try:
            # Not wait_for: on Python 3.11 it swallows a cancellation that arrives as the
            # slot is granted, and the cancelled call would then go on and be sent.
            async with asyncio.timeout(within_s):
                await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(run)  # granted just as the wait ended: hand it on
            else:
                self._waiting = [w for w in self._waiting if w[1] is not granted]
            raise

    def release(self, run: str) -> None:
        self._held[run] -= 1
        if not self._held[run]:
            del self._held[run]
        self._grant()

    def _grant(self) -> None:
        while sum(self._held.values()) < self._size:
            may = [
                (self._held.get(run, 0), i)
                for i, (run, granted) in enumerate(self._waiting)
                if self._held.get(run, 0) < self._per_run and not granted.done()
            ]
            if not may:
                return
            run, granted = self._waiting.pop(min(may)[1])
            self._held[run] = self._held.get(run, 0) + 1
            granted.set_result(None)


class PluginLink:
    """Calls to one plugin process, over connections to `socket`."""

    def __init__(
        self, socket: Path, *, max_calls: int = MAX_CALLS, limit: int = MAX_MESSAGE_BYTES
    ) -> None:
        self.socket = socket
        self._limit = limit
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._slots = _Slots(max_calls)
        self._closed = False

    async def describe(self, within_s: float) -> plugin_pb2.DescribeResponse:
        """Wait for the process to listen (it binds its socket once its code has loaded),
        then describe it; TimeoutError when that takes longer than `within_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        request = plugin_pb2.PluginRequest(describe=plugin_pb2.DescribeRequest())
        while True:
            try:
                reply = await self.call(request, max(deadline - loop.time(), 0.001))
            except NeverSent:
                if self._closed or loop.time() >= deadline:
                    raise TimeoutError from None
                await asyncio.sleep(CONNECT_RETRY_S)
                continue
            if reply.WhichOneof("reply") != "describe":
                raise LinkBroken(f"the plugin answered Describe with {reply.WhichOneof('reply')}")
            return reply.describe

    async def invoke(
        self, request: plugin_pb2.InvokeRequest, within_s: float
    ) -> plugin_pb2.InvokeResponse:
        reply = await self.call(plugin_pb2.PluginRequest(invoke=request), within_s)
        if reply.WhichOneof("reply") != "invoke":
            raise LinkBroken(f"the plugin answered Invoke with {reply.WhichOneof('reply')}")
        return reply.invoke

    async def call(
        self, request: plugin_pb2.PluginRequest, within_s: float
    ) -> plugin_pb2.PluginReply:
        """One request and its reply, within `within_s` seconds waiting included; raises
        the LinkErrors above, or TimeoutError."""
        body = request.SerializeToString()
        frame = FRAME_HEADER.pack(len(body)) + body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        run = request.invoke.run.run_id if request.WhichOneof("call") == "invoke" else ""
        await self._slots.acquire(run, within_s)
        try:
            connection = await self._connection(deadline)
            self._busy.add(connection)
            answered = False
            try:
                data = await connection.call(frame, max(deadline - loop.time(), 0.001))
                answered = True
            finally:
                self._busy.discard(connection)
                if answered and not self._closed and connection.usable:
                    self._idle.append(connection)
                else:  # cancelled, timed out or broken: its state is unknown
                    connection.close("the call ended without its answer")
        finally:
            self._slots.release(run)
        try:
            reply = plugin_pb2.PluginReply.FromString(data)
        except DecodeError as error:
            raise LinkBroken(f"the plugin sent a garbled answer: {error}") from None
        if reply.WhichOneof("reply") == "failure":
            raise PluginFailure(reply.failure.code, reply.failure.message)
        return reply

    async def _connection(self, deadline: float) -> _Connection:
        """An idle connection, else a new one."""
        if self._closed:
            raise NeverSent("the link is closed")
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
        loop = asyncio.get_running_loop()
        limit = self._limit
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                _, connection = await loop.create_unix_connection(
                    lambda: _Connection(limit), str(self.socket)
                )
        except TimeoutError:
            raise
        except OSError as error:  # no socket yet or any more, nobody listening
            raise NeverSent(f"cannot connect to {self.socket.name}: {error.strerror}") from None
        if self._closed:  # closed while connecting
            connection.close("the link is closed")
            raise NeverSent("the link is closed")
        return connection

    def close(self) -> None:
        """Close every connection: calls in flight fail at once with LinkBroken."""
        self._closed = True
        for connection in [*self._idle, *self._busy]:
            connection.close("the link to the process was closed")
        self._idle.clear()
