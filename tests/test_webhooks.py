"""Webhook triggers served by `tandem serve --http`: GitHub's signed deliveries start runs,
exactly once per delivery id, and everything else gets the answer GitHub expects."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
from conftest import TANDEM, Daemon, Project, eventually, post_signed, tandem
from tandem.testing.github_webhook import deliver

SECRET = "It's a Secret to Everybody"
ECHO = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger
"""
GITHUB_HOOK = {
    "path": "/hooks/github",
    "secret_env": "GITHUB_WEBHOOK_SECRET",
    "events": ["pull_request"],
    "actions": ["closed"],
}
GENERIC_HOOK = {
    "path": "/hooks/deploys",
    "verify": "hmac",
    "secret_env": "DEPLOY_SECRET",
    "header": "X-Deploy-Signature",
    "delivery_header": "X-Request-Id",
}
CLOSED = {"action": "closed", "number": 101, "pull_request": {"number": 101, "merged": True}}


def _listener(daemon: Daemon) -> str:
    for line in daemon.log:
        if match := re.search(r"http listener (http://\S+)", line):
            return match.group(1)
    raise AssertionError("no http listener in the log:\n" + "\n".join(daemon.log))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    project = Project(tmp_path_factory.mktemp("webhooks") / "project")
    (project.root / "tandem.yaml").write_text("http:\n  max_body_bytes: 4096\n")
    project.workflow("on_merge", script=ECHO, triggers=[{"webhook": GITHUB_HOOK}])
    # A second workflow on the same path: one delivery starts a run of each.
    project.workflow("also_on_merge", script=ECHO, triggers=[{"webhook": GITHUB_HOOK}])
    project.workflow("deploys", script=ECHO, triggers=[{"webhook": GENERIC_HOOK}])
    env = {"GITHUB_WEBHOOK_SECRET": SECRET, "DEPLOY_SECRET": "deploy-secret"}
    daemon = Daemon(project, "--http", "127.0.0.1:0", env=env, reload=True)
    yield project, daemon, _listener(daemon)
    daemon.close()


def _runs(daemon: Daemon, workflow: str) -> list:
    return daemon.client.runs(workflow, "", 100)


def test_a_signed_delivery_starts_one_run_per_workflow_and_a_redelivery_none(served) -> None:
    _, daemon, url = served
    before = len(_runs(daemon, "on_merge"))
    first = deliver(url + "/hooks/github", "pull_request", CLOSED, secret=SECRET)
    assert first.status == 202, first.body
    assert first.body["status"] == "started"
    started = {r["workflow"]: r["run_id"] for r in first.body["runs"]}
    assert set(started) == {"on_merge", "also_on_merge"}
    assert first.body["run_id"] in started.values()
    for run_id in started.values():
        for _ in daemon.client.watch(run_id):
            pass
    record = daemon.client.run(started["on_merge"])
    assert record.status == "succeeded", record.error
    assert record.output == {
        "trigger": "webhook",
        "path": "/hooks/github",
        "event": "pull_request",
        "delivery": first.delivery,
        "payload": CLOSED,
    }
    again = deliver(
        url + "/hooks/github", "pull_request", CLOSED, secret=SECRET, delivery=first.delivery
    )
    assert again.status == 200 and again.body["status"] == "duplicate", again.body
    assert {r["run_id"] for r in again.body["runs"]} == set(started.values())
    assert len(_runs(daemon, "on_merge")) == before + 1


def test_filtered_events_and_actions_are_ignored(served) -> None:
    _, daemon, url = served
    before = len(_runs(daemon, "on_merge"))
    opened = {**CLOSED, "action": "opened"}
    answer = deliver(url + "/hooks/github", "pull_request", opened, secret=SECRET)
    assert (answer.status, answer.body["status"]) == (200, "ignored"), answer.body
    assert "action 'opened'" in json.dumps(answer.body)
    answer = deliver(url + "/hooks/github", "issues", CLOSED, secret=SECRET)
    assert (answer.status, answer.body["status"]) == (200, "ignored"), answer.body
    ping = deliver(
        url + "/hooks/github", "ping", {"zen": "Keep it logically awesome."}, secret=SECRET
    )
    assert (ping.status, ping.body) == (200, {"status": "pong"})
    assert len(_runs(daemon, "on_merge")) == before


def test_bad_deliveries_get_the_right_answers_and_start_nothing(served) -> None:
    _, daemon, url = served
    before = len(_runs(daemon, "on_merge"))
    hook = url + "/hooks/github"
    wrong = deliver(hook, "pull_request", CLOSED, secret="not the secret")
    assert wrong.status == 401 and "does not match" in wrong.body["error"]
    unsigned = deliver(hook, "pull_request", CLOSED, secret=None)
    assert unsigned.status == 401 and "no signature" in unsigned.body["error"]
    assert eventually(
        lambda: sum("refused a delivery from 127.0.0.1" in x for x in daemon.log) >= 2
    )
    unknown = deliver(url + "/hooks/nowhere", "pull_request", CLOSED, secret=SECRET)
    assert unknown.status == 404
    big = deliver(hook, "pull_request", {"padding": "x" * 5000}, secret=SECRET)
    assert big.status == 413 and "4096" in big.body["error"]
    garbage = deliver(hook, "pull_request", None, secret=SECRET, body=b"{not json")
    assert garbage.status == 400 and "not JSON" in garbage.body["error"]
    with pytest.raises(urllib.error.HTTPError) as get:
        urllib.request.urlopen(hook, timeout=10)
    assert get.value.code == 405
    assert len(_runs(daemon, "on_merge")) == before


def test_a_generic_hmac_sender_is_verified_and_deduplicated(served) -> None:
    _, daemon, url = served
    body = json.dumps({"service": "api", "version": "1.2.3"}).encode()

    def post(secret: str, request_id: str) -> int:
        return post_signed(url + "/hooks/deploys", body, secret, request_id)

    assert post("deploy-secret", "req-1") == 202
    assert post("deploy-secret", "req-1") == 200  # duplicate
    assert post("wrong", "req-2") == 401
    assert len(_runs(daemon, "deploys")) == 1


def test_a_workflow_that_fails_to_reload_keeps_its_routes(served) -> None:
    project, daemon, url = served
    folder = project.root / "workflows" / "deploys"
    good = (folder / "workflow.yaml").read_text()
    (folder / "workflow.yaml").write_text(good + "\nnot_a_field: 1\n")
    try:

        def stale() -> bool:
            listed = json.loads(tandem(project, "workflows", "--json").stdout)["workflows"]
            return any(w["name"] == "deploys" and w["error"] for w in listed)

        assert eventually(stale), daemon.log
        # Another pull request: the same signed body again would be a replay, and no run.
        closed_102 = {**CLOSED, "number": 102}
        answer = deliver(url + "/hooks/github", "pull_request", closed_102, secret=SECRET)
        assert answer.status == 202

        assert post_signed(url + "/hooks/deploys", b"{}", "deploy-secret", "r9") == 202
    finally:
        (folder / "workflow.yaml").write_text(good)


def test_a_taken_port_stops_the_daemon_with_a_clear_error(project: Project) -> None:
    project.workflow("on_merge", script=ECHO, triggers=[{"webhook": GITHUB_HOOK}])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*TANDEM, "--project", str(project.root), "serve", "--http", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not project.config.control_socket.exists()


def test_a_webhook_without_a_listener_is_named_at_start(project: Project, start_daemon) -> None:
    project.workflow("on_merge", script=ECHO, triggers=[{"webhook": GITHUB_HOOK}])
    daemon = start_daemon(project)
    assert any("serves no HTTP" in line and "on_merge" in line for line in daemon.log)
