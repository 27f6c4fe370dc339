"""Every hop has a deadline: a host that never answers is a ToolTimeout in the script,
whether the SDK's own deadline fires or the run gate's."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tandem.server.run_gate import run_gate
from tandem_sdk import ToolHostClient, errors
from tandem_sdk._pb import toolhost_pb2

SERVICE = toolhost_pb2.DESCRIPTOR.services_by_name["ToolHost"].full_name


class SilentHost:
    """A ToolHost on a unix socket that takes every call and never answers, with a run
    gate in front of it, all on one event loop in a thread."""

    def __init__(self, folder: Path, gate_timeout_s: float) -> None:
        self.upstream = folder / "host.sock"
        self.gate = folder / "gate.sock"
        self._gate_timeout_s = gate_timeout_s
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    async def _serve(self) -> None:
        async def never(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            await asyncio.Event().wait()
            return b""

        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(never)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"CallTool": handler}),)
        )
        server.add_insecure_port(f"unix:{self.upstream}")
        await server.start()
        self._stop = asyncio.Event()
        async with run_gate(self.gate, self.upstream, "run1", self._gate_timeout_s):
            self._started.set()
            await self._stop.wait()
        await server.stop(0)

    def __enter__(self) -> SilentHost:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    # unix socket paths are short: keep them out of pytest's long tmp path
    with tempfile.TemporaryDirectory(prefix="tdl") as name:
        yield Path(name)


def test_the_sdk_deadline_fires_as_tool_timeout(folder: Path) -> None:
    with (
        SilentHost(folder, gate_timeout_s=60) as host,
        ToolHostClient(f"unix:{host.upstream}", "run1.secret", timeout_s=0.5) as client,
        pytest.raises(errors.ToolTimeout) as caught,
    ):
        client.call_tool("slow.thing", {})
    assert str(caught.value) == "slow.thing: no answer from the host within 0.5s"
    assert caught.value.tool == "slow.thing"


def test_the_run_gate_forwards_with_a_deadline(folder: Path) -> None:
    with (
        SilentHost(folder, gate_timeout_s=0.5) as host,
        ToolHostClient(f"unix:{host.gate}", "run1.secret", timeout_s=60) as client,
        pytest.raises(errors.ToolTimeout),
    ):
        client.call_tool("slow.thing", {})
