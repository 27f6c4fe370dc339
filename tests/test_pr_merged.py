"""The pattern's own example, `workflows/pr_merged`, end to end: the real slack_sdk and
githubkit plugins against the Slack and GitHub stand-ins, a signed GitHub webhook through
`tandem serve --http`, and both coordinators (the LLM one on the Messages API stand-in)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Daemon, Project
from tandem.testing import AnthropicStandIn
from tandem.testing.github_api import GitHubStandIn, pull_request_event
from tandem.testing.github_webhook import deliver
from tandem.testing.pr_merged import webhook_conversation
from tandem.testing.slack_api import SlackStandIn

SECRET = "pr-merged-test-secret"
ENG = "C0ENG00001"
SETTINGS = json.loads((REPO / "workflows/pr_merged/files/settings.json").read_text())
# What a sweep of the seeded #eng must do (workspace.py): merged -> :merged:, closed -> :x:.
SWEEP = {
    ("1764460920.000300", "merged"),  # links 101 and 104, both merged: one reaction
    ("1764460980.000400", "x"),  # 102 closed without merging
    ("1764461160.000700", "merged"),  # 103 open and 101 merged
}
# 105's message already has :merged:; 103 is open; 999 is unknown; #7 is an issue.
WEBHOOK_101 = {("1764460920.000300", "merged"), ("1764461160.000700", "merged")}


class Setup:
    def __init__(self, root: Path) -> None:
        self.slack = SlackStandIn().start()
        self.github = GitHubStandIn().start()
        self.model = AnthropicStandIn().start()
        project = Project(root)
        shutil.copytree(REPO / "workflows" / "pr_merged", root / "workflows" / "pr_merged")
        env = {
            **self.slack.env,
            **self.github.env,
            **self.model.env,
            "GITHUB_WEBHOOK_SECRET": SECRET,
        }
        self.daemon = Daemon(project, "--http", "127.0.0.1:0", env=env)
        self.url = next(
            m.group(1)
            for line in self.daemon.log
            if (m := re.search(r"http listener (http://\S+)", line))
        )

    def added(self) -> set[tuple[str, str]]:
        return {(r.ts, r.name) for r in self.slack.reactions_added if r.channel == ENG}

    def run(self, payload: object = None, coordinator: str | None = None):
        run_id = self.daemon.client.trigger("pr_merged", payload, coordinator)
        return self.wait(run_id)

    def wait(self, run_id: str):
        for _ in self.daemon.client.watch(run_id):
            pass
        return self.daemon.client.run(run_id)

    def close(self) -> None:
        self.daemon.close()
        for stand_in in (self.slack, self.github, self.model):
            stand_in.stop()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("pr_merged") / "project")
    yield setup
    setup.close()


@pytest.fixture
def fresh(setup: Setup) -> Setup:
    setup.slack.reset()
    setup.model.reset()
    return setup


def test_a_sweep_adds_exactly_the_expected_reactions_and_a_second_adds_none(fresh: Setup) -> None:
    first = fresh.run()
    assert first.status == "succeeded", first.error
    assert fresh.added() == SWEEP
    assert first.output["unknown"] == ["https://github.com/acme/widgets/pull/999"]
    assert {(a["ts"], a["reaction"]) for a in first.output["added"]} == SWEEP
    assert first.output["already_present"] == [{"ts": "1764461100.000600", "reaction": "merged"}]
    second = fresh.run()
    assert second.status == "succeeded", second.error
    assert second.output["added"] == []
    assert fresh.added() == SWEEP  # nothing more reached Slack


def test_a_signed_webhook_starts_one_run_and_a_redelivery_none(fresh: Setup) -> None:
    event = pull_request_event(101, action="closed")
    answer = deliver(f"{fresh.url}/hooks/github", "pull_request", event, secret=SECRET)
    assert answer.status == 202, answer.body
    record = fresh.wait(answer.body["run_id"])
    assert record.status == "succeeded", record.error
    assert fresh.added() == WEBHOOK_101
    again = deliver(
        f"{fresh.url}/hooks/github", "pull_request", event, secret=SECRET, delivery=answer.delivery
    )
    assert (again.status, again.body["status"]) == (200, "duplicate")
    runs = fresh.daemon.client.runs("pr_merged", "", 100)
    same = [
        r for r in runs if isinstance(r.trigger, dict) and r.trigger["delivery"] == answer.delivery
    ]
    assert len(same) == 1
    opened = deliver(
        f"{fresh.url}/hooks/github",
        "pull_request",
        pull_request_event(103, action="opened"),
        secret=SECRET,
    )
    assert (opened.status, opened.body["status"]) == (200, "ignored")


def test_the_llm_coordinator_adds_the_same_reactions_as_the_script(fresh: Setup) -> None:
    trigger = {
        "trigger": "webhook",
        "path": "/hooks/github",
        "event": "pull_request",
        "delivery": "same-trigger",
        "payload": pull_request_event(101, action="closed"),
    }
    script = fresh.run(trigger, "script")
    assert script.status == "succeeded", script.error
    by_script = fresh.added()
    fresh.slack.reset()
    fresh.model.add(*webhook_conversation(101, SETTINGS))
    llm = fresh.run(trigger, "llm")
    assert llm.status == "succeeded", llm.error
    assert fresh.model.problems == []
    assert fresh.added() == by_script == WEBHOOK_101
    assert llm.usage["model_calls"] == 5 and llm.usage["output_tokens"] > 0
    assert script.usage["model_calls"] == 0
    # The model was shown the real tool results, in the API's shape.
    results = [r for request in fresh.model.requests for r in request.tool_results()]
    assert any("acme/widgets" in json.dumps(r) and "merged" in json.dumps(r) for r in results)
