"""The webhook listener faces the internet: connections that never finish, bodies that
trickle in, captured deliveries sent again, deeply nested bodies and forged proxy headers
must not starve the daemon, start runs or lose one."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon, Project, eventually
from tandem.testing.github_webhook import deliver, github_headers
from tandem_sdk._pb.control_pb2 import HealthRequest

SECRET = "listener-secret"
ECHO = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger["payload"]
"""
# Holds the only run slot until the test cancels it.
HOLD = """
import time

def handler(trigger, tools, virtual_files, subagent):
    time.sleep(60)
"""
HOOK = {"path": "/hooks/github", "secret_env": "GITHUB_WEBHOOK_SECRET"}
SHARED = {"path": "/hooks/shared", "secret_env": "GITHUB_WEBHOOK_SECRET"}
CAP = 24


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    project = Project(tmp_path_factory.mktemp("listener") / "project")
    (project.root / "tandem.yaml").write_text(
        "http:\n"
        f"  max_connections: {CAP}\n"
        "  header_timeout_s: 1\n"
        "  body_timeout_s: 1\n"
        "runs:\n  max_in_flight: 1\n  max_queued: 1\n"
    )
    project.workflow("on_push", script=ECHO, triggers=[{"webhook": HOOK}])
    project.workflow("first", script=ECHO, triggers=[{"webhook": SHARED}])
    project.workflow("second", script=ECHO, triggers=[{"webhook": SHARED}])
    project.workflow("hold", script=HOLD)
    daemon = Daemon(project, "--http", "127.0.0.1:0", env={"GITHUB_WEBHOOK_SECRET": SECRET})
    url = next(
        m.group(1) for line in daemon.log if (m := re.search(r"http listener (http://\S+)", line))
    )
    yield daemon, url
    daemon.close()


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed_by_peer(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:  # refused on accept
        return True


def _wait(daemon: Daemon, run_id: str) -> None:
    for _ in daemon.client.watch(run_id):
        pass


def test_the_descriptor_limit_is_raised_at_start(served: tuple[Daemon, str]) -> None:
    daemon, _ = served
    limits = Path(f"/proc/{daemon.pid}/limits").read_text()
    found = re.search(r"Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)", limits)
    assert found is not None and found.group(1) == found.group(2), limits


def test_connections_that_never_finish_their_headers_cannot_starve_the_daemon(
    served: tuple[Daemon, str],
) -> None:
    daemon, url = served
    before = _open_fds(daemon.pid)
    held = []
    try:
        for _ in range(CAP * 4):
            sock = socket.create_connection(_address(url), timeout=5)
            sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never ends
            held.append(sock)
        # Beyond the cap a connection is closed on accept: the daemon holds at most CAP.
        assert eventually(lambda: _open_fds(daemon.pid) <= before + CAP)
        assert daemon.client.stub.Health(HealthRequest(), timeout=5).version  # Control answers
        # Every held connection is closed once its head is late, freeing its descriptor.
        assert all(_closed_by_peer(sock, within_s=10) for sock in held)
    finally:
        for sock in held:
            sock.close()
    assert eventually(lambda: _open_fds(daemon.pid) <= before + 2)
    answer = deliver(url + "/hooks/github", "push", {"n": "after the flood"}, secret=SECRET)
    assert answer.status == 202, answer.body
    _wait(daemon, answer.body["run_id"])


def test_a_body_that_trickles_in_is_cut_off_at_its_deadline(served: tuple[Daemon, str]) -> None:
    _, url = served
    body = json.dumps({"n": "slow"}).encode()
    headers = github_headers(SECRET, "push", body, "slow-delivery")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock = socket.create_connection(_address(url), timeout=10)
    try:
        request = f"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n{head}\r\n"
        sock.sendall(request.encode() + b"{")  # and nothing more
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes
            answer += chunk
        answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "did not arrive within 1s" in answer
        assert time.monotonic() - started < 10
    finally:
        sock.close()


def test_a_captured_delivery_sent_again_under_a_new_id_starts_no_run(
    served: tuple[Daemon, str],
) -> None:
    daemon, url = served
    payload = {"n": "captured"}
    first = deliver(url + "/hooks/github", "push", payload, secret=SECRET)
    assert first.status == 202, first.body
    _wait(daemon, first.body["run_id"])
    replayed = deliver(url + "/hooks/github", "push", payload, secret=SECRET)  # a new id
    assert (replayed.status, replayed.body["status"]) == (200, "duplicate"), replayed.body
    assert replayed.body["runs"][0]["run_id"] == first.body["run_id"]
    outputs = [r.output for r in daemon.client.runs("on_push", "", 100)]
    assert outputs.count(payload) == 1


def test_a_deeply_nested_body_is_a_400(served: tuple[Daemon, str]) -> None:
    daemon, url = served
    nested = b"[" * 100_000 + b"]" * 100_000
    answer = deliver(url + "/hooks/github", "push", None, secret=SECRET, body=nested)
    assert answer.status == 400, answer.body
    assert "nested too deeply" in answer.body["error"]
    assert not any("Traceback" in line for line in daemon.log)


def test_x_forwarded_for_is_not_trusted_unless_configured(served: tuple[Daemon, str]) -> None:
    daemon, url = served
    forged = {"X-Forwarded-For": "203.0.113.9"}
    answer = deliver(url + "/hooks/github", "push", {"n": 1}, secret="wrong", headers=forged)
    assert answer.status == 401
    assert eventually(lambda: any("refused a delivery from 127.0.0.1" in x for x in daemon.log))
    assert not any("203.0.113.9" in line for line in daemon.log)


def test_a_shared_path_answers_retryably_when_one_workflow_could_not_be_queued(
    served: tuple[Daemon, str],
) -> None:
    daemon, url = served
    held = daemon.client.trigger("hold", None, None)  # the only slot: the next run waits
    try:
        assert eventually(lambda: daemon.client.run(held).status == "running")
        payload = {"n": "shared"}
        answer = deliver(url + "/hooks/shared", "push", payload, secret=SECRET)
        # `first` took the one place in line; `second` found the line full.
        by_workflow = {r["workflow"]: r["status"] for r in answer.body["runs"]}
        assert by_workflow == {"first": "started", "second": "busy"}, answer.body
        assert answer.status == 429 and answer.body["status"] == "busy"
    finally:
        daemon.client.cancel(held)
    # Cancelled however early in its start (a forked child joins its cgroup before it makes
    # its process group): it ends now, not when its script would have.
    assert eventually(lambda: daemon.client.run(held).status == "cancelled", within=15)
    _wait(daemon, answer.body["run_id"])
    again = deliver(url + "/hooks/shared", "push", payload, secret=SECRET, delivery=answer.delivery)
    assert again.status == 202, again.body
    by_workflow = {r["workflow"]: r["status"] for r in again.body["runs"]}
    assert by_workflow == {"first": "duplicate", "second": "started"}
    _wait(daemon, again.body["run_id"])
    for workflow in ("first", "second"):
        outputs = [r.output for r in daemon.client.runs(workflow, "", 100)]
        assert outputs == [payload], workflow
