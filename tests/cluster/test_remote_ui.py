"""The console and Slack act on runs any daemon executes: two daemons on one shared store,
a call held on A listed and approved in B's console (whose run page follows A's run live,
as its runs page hears of A's runs), and a Slack click sent to B deciding a call held on
A, its message updated once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cluster.test_cluster import NAP, SETTINGS, Cluster, daemon_id, listener
from conftest import Daemon, Project, eventually
from tandem.console import ConsoleAddress
from tandem.console.address import TOKEN_VARIABLE
from tandem.testing.slack_api import SlackStandIn
from tandem.testing.slack_interactions import click, send_interaction
from test_slack_approvals import ADA, ENG, LUNCH, SIGNING_SECRET, _decided, _outcome, _workflow

TOKEN = "remote-ui-console-token"


@dataclass
class Pair:
    cluster: Cluster
    slack: SlackStandIn

    @property
    def a(self) -> Daemon:
        return self.cluster.daemons[0]

    @property
    def b(self) -> Daemon:
        return self.cluster.daemons[1]

    def held_on_a(self, name: str) -> tuple[str, int]:
        """A run of `react` that A executes, its reaction held: (run id, its tool.call seq)."""
        run_id = self.a.client.trigger("react", {"ts": LUNCH, "name": name}, None)
        assert eventually(lambda: self.a.client.run(run_id).status == "waiting"), self.a.log
        assert self.cluster.owner(run_id) == daemon_id(self.a)
        call = next(e for e in self.a.client.run(run_id).events if e.kind == "tool.call")
        return run_id, call.seq


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    slack = SlackStandIn().start()
    project = Project(tmp_path_factory.mktemp("remote_ui") / "project")
    database = project.root / "shared" / "runs.sqlite3"
    (project.root / "tandem.yaml").write_text(SETTINGS.replace("{store}", str(database)))
    _workflow(project, "react", "eng")
    project.workflow("nap", script=NAP)
    env = {**slack.env, "SLACK_SIGNING_SECRET": SIGNING_SECRET, TOKEN_VARIABLE: TOKEN}
    cluster = Cluster(project, str(database))
    try:
        for name in ("a", "b"):
            cluster.daemons.append(
                Daemon(
                    project,
                    "--http",
                    "127.0.0.1:0",
                    "--console",
                    "127.0.0.1:0",
                    env=env,
                    state_dir=project.root / f"state-{name}",
                )
            )
        yield Pair(cluster, slack)
    finally:
        for daemon in cluster.daemons:
            daemon.close()
        slack.stop()


def _console(state: Path) -> httpx.Client:
    """A browser signed in to the console of the daemon with that state folder."""
    address = None

    def served() -> bool:
        nonlocal address
        address = ConsoleAddress.read(state)
        return address is not None

    assert eventually(served)
    assert address is not None
    browser = httpx.Client(base_url=address.url, timeout=30, headers={"Origin": address.url})
    assert browser.get(f"/?token={TOKEN}").status_code == 303  # signed in: to the runs page
    return browser


def test_a_call_held_on_one_daemon_is_approved_in_anothers_console(pair: Pair) -> None:
    pair.slack.reset()
    run_id, seq = pair.held_on_a("eyes")
    with contextlib.closing(_console(pair.cluster.project.root / "state-b")) as browser:
        page = browser.get("/approvals").text
        # Listed in B's console, with the daemon that holds it.
        row = page.split(f'id="held-{run_id}-{seq}"')[1].split("</tr>")[0]
        assert f"pid {pair.a.pid}" in row
        csrf = page.split('"X-CSRF-Token": "')[1].split('"')[0]
        with browser.stream("GET", f"/runs/{run_id}/stream") as stream:
            assert stream.status_code == 200  # B follows A's run from the store
            decided = browser.post(
                f"/approvals/{run_id}/seq/{seq}",
                data={"csrf": csrf, "decision": "approve", "reason": "looks right"},
            )
            assert (decided.status_code, decided.headers["location"]) == (303, "/approvals")
            events = [line for line in stream.iter_lines() if line.startswith("event:")]
        assert events[-1] == "event: ended"
    record = pair.a.client.run(run_id)
    assert record.status == "succeeded", record.error
    (decision,) = _decided(pair.a, run_id)
    assert (decision["approved"], decision["reason"], decision["by"]) == (
        True,
        "looks right",
        "console",
    )
    # The message A posted for the call shows the outcome, A's update, once.
    assert eventually(lambda: len(pair.slack.updated) == 1), pair.a.log
    assert "Approved" in _outcome(pair.slack.updated[0])


def test_a_slack_click_sent_to_another_daemon_decides_the_call(pair: Pair) -> None:
    pair.slack.reset()
    run_id, _ = pair.held_on_a("tada")
    assert eventually(lambda: len(pair.slack.posted) == 1), pair.a.log
    posted = pair.slack.posted[0]
    message = pair.slack.message(posted.channel, posted.ts)
    url = listener(pair.b) + "/hooks/slack/interactions"
    answer = send_interaction(
        url, click(message, ENG, "tandem_approve", user=ADA), signing_secret=SIGNING_SECRET
    )
    assert answer.status == 200, answer
    assert eventually(lambda: pair.cluster.ended([run_id])), pair.b.log
    assert pair.a.client.run(run_id).status == "succeeded"
    assert pair.slack.reactions(ENG, LUNCH)["tada"]
    (decision,) = _decided(pair.a, run_id)
    assert decision["by"] == f"ada in Slack ({ADA.id})"
    # B passed the click on and left the message to A, which updated it once.
    passed = f"passed on to the daemon executing run {run_id}"
    assert eventually(lambda: any(passed in line for line in pair.b.log)), pair.b.log
    assert eventually(lambda: len(pair.slack.updated) >= 1), pair.a.log
    assert [_outcome(u) for u in pair.slack.updated] == [
        f":white_check_mark: Approved by <@{ADA.id}>"
    ]
    assert pair.slack.updated[0].ts == message.ts
    assert pair.slack.problems == []


def test_a_consoles_runs_page_hears_of_runs_another_daemon_makes(pair: Pair) -> None:
    browser = _console(pair.cluster.project.root / "state-b")
    with contextlib.closing(browser), browser.stream("GET", "/runs/stream") as stream:
        assert stream.status_code == 200
        run_id = pair.a.client.trigger("nap", {"sleep": 0}, None)
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: runs"
    assert eventually(lambda: pair.cluster.ended([run_id]))
    assert pair.cluster.owner(run_id) == daemon_id(pair.a)
