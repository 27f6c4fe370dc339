"""MCP servers that misbehave (tests/mcp/servers/), as plugins of one embedded host: a
call in flight when its server dies, a call never answered, a handshake never answered,
garbage between frames, a tool list that changes. No failure hangs a run or the host."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import yaml
from conftest import Project, eventually
from tandem.client import ControlClient
from tandem.embedded import EmbeddedHost
from tandem.runs import RunRecord

from .conftest import SERVERS

CALLS = """
from tandem_sdk.errors import TandemError

def handler(trigger, tools, virtual_files, subagent):
    server = getattr(tools, trigger["server"])
    done = []
    for name, arguments in trigger["calls"]:
        try:
            done.append(["ok", getattr(server, name)(**arguments)])
        except TandemError as error:
            done.append([type(error).__name__, str(error)])
    return done
"""


def _server(name: str, **tandem_keys: float) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SERVERS / f"{name}.py")], **tandem_keys}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedHost]:
    project = Project(tmp_path_factory.mktemp("faulty") / "project")
    servers = {
        "dies": _server("dies"),
        # A deadline far past this module's length: a call that fails, fails at once.
        "hangs": _server("hangs", call_timeout_s=1),
        "mute": _server("mute", start_timeout_s=1),
        "garbage": _server("garbage"),
        "changing": _server("changing"),
    }
    config = {"builtin_plugins": False, "mcp_servers": servers}
    (project.root / "tandem.yaml").write_text(yaml.safe_dump(config))
    for name in servers:
        project.workflow(name, script=CALLS, tools=[f"{name}.*"])
    with EmbeddedHost(project.config) as embedded:
        yield embedded


def _run(host: EmbeddedHost, server: str, *calls: tuple[str, dict[str, Any]]) -> RunRecord:
    with ControlClient(host.control_socket) as client:
        run_id = client.trigger(server, {"server": server, "calls": calls}, None)
        for _ in client.watch(run_id):
            pass
        return client.run(run_id)


def _outcomes(record: RunRecord) -> list[str]:
    assert record.status == "succeeded", record.error
    return [kind for kind, _ in record.output]


def test_a_call_in_flight_when_its_server_dies_fails_at_once_and_the_server_restarts(
    host: EmbeddedHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tandem.mcp")
    server = host.host.plugins.plugins["dies"]
    record = _run(host, "dies", ("die", {}), ("die", {}), ("echo", {"value": 7}))
    # Not ToolTimeout: the deadline (60 s by default) is far past this module's length.
    assert _outcomes(record) == ["ToolUnavailable", "ToolUnavailable", "ok"]
    assert "mcp server 'dies' went away during the call" in record.output[0][1]
    assert record.output[2][1] == {"result": 7}, "the restarted server answers"
    assert server.restarts == 2
    waits = [
        float(w) for w in re.findall(r"mcp server dies .*restarting in ([\d.]+)s", caplog.text)
    ]
    assert len(waits) == 2 and waits[1] > waits[0], f"backoff grows: {waits}"


def test_a_call_never_answered_fails_at_the_deadline_and_the_server_serves_on(
    host: EmbeddedHost,
) -> None:
    record = _run(host, "hangs", ("hang", {}), ("echo", {"value": 3}))
    assert _outcomes(record) == ["ToolTimeout", "ok"]
    assert "did not answer within 1s" in record.output[0][1]
    # The host is not held either: the next run goes through.
    assert _outcomes(_run(host, "hangs", ("echo", {"value": 4}))) == ["ok"]


def test_a_handshake_never_answered_is_a_load_error_and_the_others_run(
    host: EmbeddedHost,
) -> None:
    plugins = host.host.plugins
    assert "mute" not in plugins.plugins
    why = "mcp server 'mute'"
    assert why in plugins.broken["mute"], plugins.broken
    assert "no answer to the handshake within 1s" in plugins.broken["mute"], plugins.broken
    with ControlClient(host.control_socket) as client, pytest.raises(grpc.RpcError) as refused:
        client.trigger("mute", {"server": "mute", "calls": []}, None)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no answer to the handshake within 1s" in refused.value.details()
    assert _outcomes(_run(host, "garbage", ("echo", {"value": 1}))) == ["ok"]


def test_garbage_between_frames_is_logged_and_calls_still_work(
    host: EmbeddedHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tandem.mcp")
    record = _run(host, "garbage", ("echo", {"value": 5}), ("echo", {"value": 6}))
    assert _outcomes(record) == ["ok", "ok"]
    assert [value for _, value in record.output] == ["5", "6"]
    assert "this is not JSON-RPC" in caplog.text
    assert "bytes cut]" in caplog.text, "a stderr line past 64 KiB is logged, cut"


def test_after_list_changed_the_new_tool_is_callable_and_the_removed_one_is_not_found(
    host: EmbeddedHost,
) -> None:
    server = host.host.plugins.plugins["changing"]
    assert _outcomes(_run(host, "changing", ("swap", {}))) == ["ok"]
    assert eventually(lambda: {t.name for t in server.tools} == {"changing.swap", "changing.new"})
    record = _run(host, "changing", ("new", {}), ("old", {}))
    assert _outcomes(record) == ["ok", "NotFound"]
    assert record.output[0][1] == "new ran"
