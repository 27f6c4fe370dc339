"""The host's link to a plugin process, against a real `tandem_sdk.plugin_server`
subprocess: what each way a call can end tells the caller about whether the process saw
it, which is what the plugin supervisor's retry rule rests on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from tandem.plugins.link import (
    LinkBroken,
    NeverSent,
    PluginFailure,
    PluginLink,
    ReplyTooLarge,
)
from tandem_sdk._pb import plugin_pb2

BOUND_S = 20.0

PLUGIN = '''
import os, signal, threading, time
from tandem_sdk import RunContext, tool

_meet = threading.Barrier(2, timeout=10)

@tool(side_effects=False)
def echo(value: str) -> str:
    """The value.

    Args:
        value: any text.
    """
    return value

@tool(side_effects=False)
def left(ctx: RunContext) -> float:
    """Seconds left before the host stops waiting."""
    return ctx.time_left()

@tool(side_effects=False)
def meet() -> bool:
    """Returns once a second call has arrived too: both must be in flight at once."""
    _meet.wait()
    return True

@tool(side_effects=False)
def nap(seconds: float, started: str = "") -> None:
    """Sleep.

    Args:
        seconds: how long.
        started: a file to create once the call has begun.
    """
    if started:
        open(started, "w").close()
    time.sleep(seconds)

@tool
def die() -> None:
    """Kill the process in the middle of the call."""
    os.kill(os.getpid(), signal.SIGKILL)
'''


class Plugin:
    """A plugin server subprocess and a link to it, on an event loop of the test's own."""

    def __init__(self, folder: Path, **link: int) -> None:
        module = folder / "plugin.py"
        module.write_text(textwrap.dedent(PLUGIN))
        self.socket = folder / "p.sock"
        argv = ["--name", "p", "--module", str(module), "--socket", str(self.socket)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tandem_sdk.plugin_server", *argv],
            stderr=subprocess.PIPE,
        )
        self.link = PluginLink(self.socket, **link)

    def run(self, work: Callable[[PluginLink], Awaitable[object]]) -> object:
        async def bounded() -> object:
            await self.link.describe(BOUND_S)
            return await asyncio.wait_for(work(self.link), BOUND_S)

        return asyncio.run(bounded())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(BOUND_S)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def plugin() -> Iterator[Callable[..., Plugin]]:
    # unix socket paths are short: keep them out of pytest's long tmp path
    started: list[Plugin] = []
    with tempfile.TemporaryDirectory(prefix="tpl") as name:

        def start(**link: int) -> Plugin:
            started.append(Plugin(Path(name), **link))
            return started[-1]

        yield start
        for each in started:
            each.stop()


def invoke(tool: str, arguments: str = "{}", seconds: float = 30.0) -> plugin_pb2.InvokeRequest:
    return plugin_pb2.InvokeRequest(
        tool=tool,
        arguments_json=arguments,
        run=plugin_pb2.RunContext(run_id="r", workflow="w", deadline_unix=time.time() + seconds),
    )


def test_describe_waits_for_the_process_then_calls_answer(plugin) -> None:
    async def work(link: PluginLink) -> object:
        answers = [await link.invoke(invoke("echo", '{"value": "hi"}'), 5) for _ in range(3)]
        left = await link.invoke(invoke("left", seconds=30), 5)
        return [a.result_json for a in answers], float(left.result_json)

    answers, left = plugin().run(work)
    assert answers == ['"hi"'] * 3
    assert 0 < left <= 30  # the deadline reaches the tool


def test_calls_overlap_on_connections_of_their_own(plugin) -> None:
    async def work(link: PluginLink) -> object:
        both = await asyncio.gather(
            link.invoke(invoke("meet"), 15), link.invoke(invoke("meet"), 15)
        )
        return [a.result_json for a in both]

    assert plugin().run(work) == ["true", "true"]


def test_an_unknown_tool_and_a_failing_tool(plugin) -> None:
    async def work(link: PluginLink) -> object:
        with pytest.raises(PluginFailure) as unknown:
            await link.invoke(invoke("nope"), 5)
        failed = await link.invoke(invoke("echo", '{"value": 3}'), 5)
        return unknown.value, failed

    unknown, failed = plugin().run(work)
    assert unknown.code == "not_found" and "has no tool 'nope'" in unknown.message
    assert failed.is_error and failed.error.type == "InvalidArguments"


def test_a_call_in_flight_when_the_process_dies_is_broken(plugin) -> None:
    async def work(link: PluginLink) -> object:
        await link.invoke(invoke("echo", '{"value": "warm"}'), 5)
        with pytest.raises(LinkBroken):
            await link.invoke(invoke("die"), 5)
        return True

    assert plugin().run(work)


def test_a_call_after_the_process_died_never_reached_it(plugin) -> None:
    """Whether the link still holds a connection to the dead process or must open a new
    one, the request cannot have reached it: the supervisor may send it elsewhere."""
    started = plugin()

    async def work(link: PluginLink) -> object:
        await link.invoke(invoke("echo", '{"value": "warm"}'), 5)  # leaves an idle connection
        os.kill(started.process.pid, signal.SIGKILL)
        await asyncio.get_running_loop().run_in_executor(None, started.process.wait)
        for _ in range(2):  # the idle connection, then a fresh connect
            with pytest.raises(NeverSent):
                await link.invoke(invoke("echo", '{"value": "lost"}'), 5)
        return True

    assert started.run(work)


def test_an_answer_over_the_limit_is_refused_and_the_link_serves_on(plugin) -> None:
    async def work(link: PluginLink) -> object:
        with pytest.raises(ReplyTooLarge) as large:
            await link.invoke(invoke("echo", '{"value": "' + "x" * 5000 + '"}'), 5)
        small = await link.invoke(invoke("echo", '{"value": "ok"}'), 5)
        return large.value, small.result_json

    large, small = plugin(limit=4096).run(work)
    assert large.limit == 4096 and large.size > 5000
    assert small == '"ok"'


def test_timeouts_and_cancellations_drop_the_connection_only(plugin) -> None:
    async def work(link: PluginLink) -> object:
        with pytest.raises(TimeoutError):
            await link.invoke(invoke("nap", '{"seconds": 5}'), 0.2)
        call = asyncio.ensure_future(link.invoke(invoke("nap", '{"seconds": 5}'), 10))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return (await link.invoke(invoke("echo", '{"value": "after"}'), 5)).result_json

    assert plugin().run(work) == '"after"'


def test_calls_past_the_cap_wait_for_a_free_connection(plugin) -> None:
    async def work(link: PluginLink) -> object:
        busy = asyncio.ensure_future(link.invoke(invoke("nap", '{"seconds": 1}'), 10))
        await asyncio.sleep(0.1)
        with pytest.raises(TimeoutError):  # the one slot is taken for longer than this
            await link.invoke(invoke("echo", '{"value": "x"}'), 0.2)
        waited = await link.invoke(invoke("echo", '{"value": "y"}'), 10)
        await busy
        return waited.result_json

    assert plugin(max_calls=1).run(work) == '"y"'


def test_closing_the_link_fails_the_calls_in_flight_at_once(plugin) -> None:
    async def work(link: PluginLink) -> object:
        call = asyncio.ensure_future(link.invoke(invoke("nap", '{"seconds": 10}'), 15))
        await asyncio.sleep(0.2)
        link.close()
        with pytest.raises(LinkBroken, match="closed"):
            await call
        with pytest.raises(NeverSent):
            await link.invoke(invoke("echo", '{"value": "x"}'), 5)
        return True

    assert plugin().run(work)


def test_sigterm_lets_the_calls_in_flight_finish(plugin) -> None:
    started = plugin()
    began = started.socket.with_name("began")

    async def work(link: PluginLink) -> object:
        arguments = json.dumps({"seconds": 0.5, "started": str(began)})
        call = asyncio.ensure_future(link.invoke(invoke("nap", arguments), 10))
        while not began.exists():
            await asyncio.sleep(0.01)
        started.process.send_signal(signal.SIGTERM)
        return (await call).is_error

    assert started.run(work) is False
    assert started.process.wait(BOUND_S) == 0


def test_one_run_cannot_hold_every_slot(plugin) -> None:
    """A run's slow calls leave a slot for another run's call, which answers while they
    are still in flight; the held-back call goes on once a slot is free."""

    async def work(link: PluginLink) -> object:
        def of(run: str, tool: str, arguments: str) -> plugin_pb2.InvokeRequest:
            request = invoke(tool, arguments)
            request.run.run_id = run
            return request

        slow = [
            asyncio.ensure_future(link.invoke(of("a", "nap", '{"seconds": 60}'), 60))
            for _ in range(2)
        ]
        other = await link.invoke(of("b", "echo", '{"value": "through"}'), 10)
        assert not any(call.done() for call in slow)
        for call in slow:
            call.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
        again = await link.invoke(of("a", "echo", '{"value": "after"}'), 10)
        return other.result_json, again.result_json

    assert plugin(max_calls=2).run(work) == ('"through"', '"after"')
