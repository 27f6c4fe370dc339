"""The pattern's own example, `workflows/pr_merged`, end to end: the real slack_sdk and
githubkit plugins against the Slack and GitHub stand-ins, a signed GitHub webhook through
`tandem serve --http`, and both coordinators (the LLM one on the Messages API stand-in)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pr_merged_fixtures import SECRET, SETTINGS, SWEEP, WEBHOOK_101, Setup
from tandem.testing.github_api import pull_request_event
from tandem.testing.github_webhook import deliver
from tandem.testing.pr_merged import webhook_conversation
from tandem.testing.replies import Reply


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


def test_the_guard_refuses_a_merged_reaction_on_an_open_pr_and_the_model_corrects_itself(
    fresh: Setup,
) -> None:
    open_pr = "https://github.com/acme/widgets/pull/103"
    react = {"channel": "eng", "ts": "1764460860.000200", "name": "merged"}  # links 103 only
    fresh.model.add(
        Reply.tool_use(("slack__get_messages", {"channel": "eng", "limit": 50})),
        Reply.tool_use(("github__pr_status", {"url": open_pr})),
        Reply.tool_use(("slack__add_reaction", react)),
        Reply.text("#103 is still open: no reaction."),
    )
    run = fresh.run({"trigger": "manual"}, "llm")
    assert run.status == "succeeded", run.error
    assert fresh.added() == set()  # the refused call never reached Slack
    (refused,) = fresh.model.requests[3].tool_results()
    assert refused["is_error"] is True
    assert "guard slack_add_reaction refused" in refused["content"]
    assert "#103 is open" in refused["content"]
    (event,) = [e for e in run.events if e.kind == "guard.refused"]
    assert (event.data["guard"], event.data["tool"]) == ("slack_add_reaction", "slack.add_reaction")
    ledger = fresh.daemon.client.ledger("pr_merged", 0.0, 0.0, 1000)
    assert ledger["refusals"] == {"pr_merged": {"slack_add_reaction": 1}}
