"""Every hop has a deadline: a host that never answers is a ToolTimeout in the script, and
on a run's own socket the servicer's work for the call ends with it, or with the run when
the caller sent no deadline at all."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from tandem.server.run_gate import run_gate
from tandem_sdk import ToolHostClient, errors
from tandem_sdk._pb import toolhost_pb2, toolhost_pb2_grpc

BOUND_S = 10.0


class SilentServicer(toolhost_pb2_grpc.ToolHostServicer):
    """Takes every CallTool and never answers; tells when a call arrives and when its
    work is cancelled."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.cancelled = threading.Event()

    async def CallTool(
        self,
        request: toolhost_pb2.CallToolRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> toolhost_pb2.CallToolResponse:
        self.arrived.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return toolhost_pb2.CallToolResponse()


class SilentHost:
    """One silent servicer served as the host serves its ToolHost: on a shared socket, and
    on run1's own socket through `run_gate`, all on one event loop in a thread."""

    def __init__(self, folder: Path) -> None:
        self.servicer = SilentServicer()
        self.shared = folder / "host.sock"
        self.run_socket = folder / "run.sock"
        self.run_ended = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._end_run: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    async def _serve(self) -> None:
        server = grpc.aio.server()
        toolhost_pb2_grpc.add_ToolHostServicer_to_server(self.servicer, server)
        server.add_insecure_port(f"unix:{self.shared}")
        await server.start()
        self._end_run, self._stop = asyncio.Event(), asyncio.Event()
        async with run_gate(self.run_socket, self.servicer, "run1"):
            self._started.set()
            await self._end_run.wait()
        self.run_ended.set()
        await self._stop.wait()
        await server.stop(0)

    def end_run(self) -> None:
        """Leave the run's `run_gate` block, as the coordinator does when the run ends."""
        assert self._end_run is not None
        self._loop.call_soon_threadsafe(self._end_run.set)
        assert self.run_ended.wait(BOUND_S)

    def __enter__(self) -> SilentHost:
        self._thread.start()
        assert self._started.wait(BOUND_S)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._end_run is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._end_run.set)
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(BOUND_S)
        self._loop.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    # unix socket paths are short: keep them out of pytest's long tmp path
    with tempfile.TemporaryDirectory(prefix="tdl") as name:
        yield Path(name)


def test_the_sdk_deadline_fires_as_tool_timeout(folder: Path) -> None:
    with (
        SilentHost(folder) as host,
        ToolHostClient(f"unix:{host.shared}", "run1.secret", timeout_s=0.5) as client,
        pytest.raises(errors.ToolTimeout) as caught,
    ):
        client.call_tool("slow.thing", {})
    assert str(caught.value) == "slow.thing: no answer from the host within 0.5s"
    assert caught.value.tool == "slow.thing"


def test_on_a_run_socket_the_callers_deadline_cancels_the_servicers_work(folder: Path) -> None:
    with SilentHost(folder) as host:
        with (
            ToolHostClient(f"unix:{host.run_socket}", "run1.secret", timeout_s=0.5) as client,
            pytest.raises(errors.ToolTimeout),
        ):
            client.call_tool("slow.thing", {})
        assert host.servicer.arrived.is_set()
        # The servicer's side of the call ends too, while the run goes on.
        assert host.servicer.cancelled.wait(BOUND_S)
        assert not host.run_ended.is_set()


def test_a_call_with_no_deadline_ends_with_its_run(folder: Path) -> None:
    """A script may speak gRPC itself and send no deadline: the run's end still ends the
    call, on the caller's side and in the servicer."""
    with (
        SilentHost(folder) as host,
        grpc.insecure_channel(f"unix:{host.run_socket}") as channel,
    ):
        stub = toolhost_pb2_grpc.ToolHostStub(channel)
        call = stub.CallTool.future(
            toolhost_pb2.CallToolRequest(name="slow.thing"),
            metadata=(("authorization", "Bearer run1.secret"),),
        )
        assert host.servicer.arrived.wait(BOUND_S)
        assert not call.done()
        host.end_run()
        error = call.exception(timeout=BOUND_S)
        assert isinstance(error, grpc.RpcError)
        assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        assert host.servicer.cancelled.wait(BOUND_S)
