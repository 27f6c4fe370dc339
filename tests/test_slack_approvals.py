"""Approvals in Slack: a held call is posted to the workflow's channel with Approve / Deny
buttons, a signed click decides it, and the message then shows the outcome. One daemon
with `--http` and the Slack stand-in serves every test here."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Project, eventually
from tandem.slack_approvals import messages
from tandem.store import RunRecord
from tandem.testing import workspace
from tandem.testing.slack_api import ChangedMessage, SlackStandIn
from tandem.testing.slack_interactions import click, send_interaction
from tandem.workflows.loader import WorkflowError, load_workflow

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ENG = workspace.ENG
LUNCH = "1764460800.000100"  # a seeded message in #eng with no reactions
ADA, GRACE = workspace.USERS[0], workspace.USERS[1]
REACT = """
from tandem_sdk.errors import ToolError

def handler(trigger, tools, virtual_files, subagent):
    try:
        return tools.slack.add_reaction(channel="eng", ts=trigger["ts"], name=trigger["name"])
    except ToolError as error:
        return {"refused": error.type, "message": str(error)}
"""


def _workflow(project: Project, name: str, channel: str) -> None:
    project.workflow(
        name,
        script=REACT,
        tools=["slack.add_reaction"],
        approvals={"script": ["side_effects"], "timeout_s": 60, "notify": {"slack": channel}},
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, SlackStandIn, str]]:
    slack = SlackStandIn().start()
    project = Project(tmp_path_factory.mktemp("slack_approvals") / "project")
    _workflow(project, "react", "eng")
    _workflow(project, "react_lost", "C0NOSUCH01")  # an ID Slack does not know
    env = {**slack.env, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    daemon = Daemon(project, "--http", "127.0.0.1:0", env=env)
    listener = next(
        m.group(1) for line in daemon.log if (m := re.search(r"http listener (http://\S+)", line))
    )
    yield daemon, slack, listener + "/hooks/slack/interactions"
    daemon.close()
    slack.stop()


@pytest.fixture
def fresh(served: tuple[Daemon, SlackStandIn, str]) -> tuple[Daemon, SlackStandIn, str]:
    served[1].reset()
    return served


def _held(daemon: Daemon, slack: SlackStandIn, workflow: str, name: str) -> tuple[str, Any]:
    """Start a run whose reaction is held, and wait for its message in #eng."""
    run_id = daemon.client.trigger(workflow, {"ts": LUNCH, "name": name}, None)
    assert eventually(lambda: len(slack.posted) == 1), daemon.log
    posted = slack.posted[0]
    return run_id, slack.message(posted.channel, posted.ts)


def _finished(daemon: Daemon, run_id: str) -> RunRecord:
    for _ in daemon.client.watch(run_id):
        pass
    return daemon.client.run(run_id)


def _decided(daemon: Daemon, run_id: str) -> list[dict[str, Any]]:
    return [e.data for e in daemon.client.run(run_id).events if e.kind == "approval.decided"]


def _outcome(update: ChangedMessage) -> str:
    assert update.blocks is not None
    assert [b["type"] for b in update.blocks] == ["section", "context"], "buttons removed"
    return str(update.blocks[1]["elements"][0]["text"])


def test_a_held_call_is_posted_and_an_approve_click_decides_it(fresh) -> None:
    daemon, slack, url = fresh
    run_id, message = _held(daemon, slack, "react", "eyes")
    assert slack.posted[0].channel == ENG
    section, actions = message.blocks
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    assert "`slack.add_reaction`" in text and f"`{run_id}`" in text
    assert "*workflow* `react`" in text and "*coordinator* script" in text
    assert '{"channel":"eng","name":"eyes","ts":"1764460800.000100"}' in text
    assert "*Time left:*" in text
    assert actions["type"] == "actions"
    buttons = actions["elements"]
    assert [(b["type"], b["action_id"]) for b in buttons] == [
        ("button", "tandem_approve"),
        ("button", "tandem_deny"),
    ]
    call = next(e for e in daemon.client.run(run_id).events if e.kind == "tool.call")
    assert {json.dumps(json.loads(b["value"]), sort_keys=True) for b in buttons} == {
        json.dumps({"call": call.seq, "run": run_id}, sort_keys=True)
    }

    answer = send_interaction(
        url, click(message, ENG, "tandem_approve", user=ADA), signing_secret=SIGNING_SECRET
    )
    assert answer.status == 200, answer
    record = _finished(daemon, run_id)
    assert record.status == "succeeded", record.error
    assert slack.reactions(ENG, LUNCH) == {"eyes": [workspace.BOT.id]}
    (decided,) = _decided(daemon, run_id)
    assert decided["approved"] is True and decided["reason"] == "approved in Slack by ada"
    assert decided["by"] == f"ada in Slack ({ADA.id})"
    assert eventually(lambda: len(slack.updated) == 1), daemon.log
    assert _outcome(slack.updated[0]) == f":white_check_mark: Approved by <@{ADA.id}>"
    assert slack.updated[0].ts == message.ts

    # The same button clicked again: the call is decided; the message says by whom.
    late = slack.message(ENG, message.ts)
    late.blocks = message.blocks  # a client that had not refreshed still shows the buttons
    again = click(late, ENG, "tandem_approve", user=GRACE)
    assert send_interaction(url, again, signing_secret=SIGNING_SECRET).status == 200
    assert eventually(lambda: len(slack.updated) == 2), daemon.log
    assert (
        _outcome(slack.updated[1]) == f"Already decided: :white_check_mark: Approved by <@{ADA.id}>"
    )
    assert len(_decided(daemon, run_id)) == 1
    assert slack.problems == []


def test_a_deny_click_denies_the_call_and_values_are_escaped(fresh) -> None:
    daemon, slack, url = fresh
    run_id, message = _held(daemon, slack, "react", "<!here>&`x`")
    text = message.blocks[0]["text"]["text"]
    assert "&lt;!here&gt;&amp;" in text and "<!here>" not in text
    answer = send_interaction(
        url, click(message, ENG, "tandem_deny", user=GRACE), signing_secret=SIGNING_SECRET
    )
    assert answer.status == 200, answer
    record = _finished(daemon, run_id)
    assert record.status == "succeeded" and record.output["refused"] == "denied", record.output
    assert "denied in Slack by grace" in record.output["message"]
    (decided,) = _decided(daemon, run_id)
    assert decided["approved"] is False and decided["reason"] == "denied in Slack by grace"
    assert eventually(lambda: len(slack.updated) == 1), daemon.log
    assert _outcome(slack.updated[0]) == f":x: Denied by <@{GRACE.id}>"
    assert slack.reactions_added == []


def test_forged_and_stale_clicks_are_refused_and_decide_nothing(fresh) -> None:
    daemon, slack, url = fresh
    run_id, message = _held(daemon, slack, "react", "eyes")
    payload = click(message, ENG, "tandem_approve", user=ADA)
    forged = send_interaction(url, payload, signing_secret="not-the-secret")
    assert forged.status == 401
    tampered = send_interaction(
        url, payload, signing_secret=SIGNING_SECRET, signature_header="v0=" + "0" * 64
    )
    assert tampered.status == 401
    stale = send_interaction(
        url, payload, signing_secret=SIGNING_SECRET, timestamp=time.time() - 360
    )
    assert stale.status == 401
    assert _decided(daemon, run_id) == [] and slack.updated == []
    assert any("refused a request" in line for line in daemon.log)
    assert daemon.client.decide(run_id, 0, True) == [1]  # still held: the CLI's way works
    assert _finished(daemon, run_id).status == "succeeded"
    assert eventually(lambda: len(slack.updated) == 1), daemon.log
    assert "Approved with `tandem approve`" in _outcome(slack.updated[0])


def test_a_click_counts_only_on_the_message_posted_for_its_call(fresh) -> None:
    daemon, slack, url = fresh
    run_id, message = _held(daemon, slack, "react", "eyes")
    # Another message (any workflow may post with the bot's token) carrying copies of the
    # buttons, whose value names this held call; and the real message with its call
    # section rewritten (slack.update_message), buttons kept.
    foreign = replace(message, ts="1764460999.000100")
    section = {**message.blocks[0], "text": {"type": "mrkdwn", "text": "*Lunch poll*"}}
    rewritten = replace(message, blocks=[section, message.blocks[1]])
    for fake in (foreign, rewritten):
        payload = click(fake, ENG, "tandem_approve", user=GRACE)
        assert send_interaction(url, payload, signing_secret=SIGNING_SECRET).status == 200
    assert daemon.client.decide(run_id, 0, True) == [1]  # still held, no one decided it
    assert _finished(daemon, run_id).status == "succeeded"
    (decided,) = _decided(daemon, run_id)
    assert decided["by"] == "control"
    assert eventually(lambda: len(slack.updated) == 1), daemon.log
    assert slack.updated[0].ts == message.ts  # the foreign message is left as it is
    assert sum("refused grace's click" in line for line in daemon.log) == 2


def test_a_timestamp_that_is_no_unix_time_is_refused(fresh) -> None:
    daemon, _, url = fresh
    for timestamp in ("9" * 5000, "\u00b2"):  # too long for int(); a digit int() refuses
        request = urllib.request.Request(
            url,
            data=b"payload=%7B%7D",
            headers={"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=00"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401, daemon.log


def test_a_run_cancelled_while_held_takes_the_buttons_off(fresh) -> None:
    daemon, slack, _ = fresh
    run_id, message = _held(daemon, slack, "react", "eyes")
    assert daemon.client.cancel(run_id)
    assert _finished(daemon, run_id).status == "cancelled"
    assert eventually(lambda: len(slack.updated) == 1), daemon.log
    assert slack.updated[0].ts == message.ts
    assert _outcome(slack.updated[0]) == messages.RUN_ENDED_TEXT


def test_a_post_that_fails_leaves_the_call_held_for_the_cli(fresh) -> None:
    daemon, slack, _ = fresh
    run_id = daemon.client.trigger("react_lost", {"ts": LUNCH, "name": "eyes"}, None)
    refused = lambda: [c for c in slack.calls if c.method == "chat.postMessage"]  # noqa: E731
    assert eventually(lambda: len(refused()) == 1), daemon.log
    assert refused()[0].outcome == "channel_not_found" and slack.posted == []
    assert eventually(lambda: any("could not post" in line for line in daemon.log)), daemon.log
    assert daemon.client.run(run_id).status == "waiting"
    assert daemon.client.decide(run_id, 1, True) == [1]
    record = _finished(daemon, run_id)
    assert record.status == "succeeded", record.error
    assert slack.reactions(ENG, LUNCH) == {"eyes": [workspace.BOT.id]}


def test_notify_names_a_channel_and_needs_the_slack_plugin(tmp_path: Path) -> None:
    project = Project(tmp_path / "project")
    good = project.workflow(
        "held", script=REACT, approvals={"script": ["side_effects"], "notify": {"slack": "eng"}}
    )
    with pytest.raises(WorkflowError, match=r"approvals.notify.slack.*needs Slack.*slack plugin"):
        load_workflow(good, ["github.pr_status"])
    bad = project.workflow(
        "typo", script=REACT, approvals={"script": [], "notify": {"slack": "Release Team"}}
    )
    with pytest.raises(WorkflowError, match="'Release Team' is not a Slack channel"):
        load_workflow(bad, ["slack.post_message", "slack.update_message"])


def test_long_escaped_arguments_fit_a_section_and_keep_their_entities() -> None:
    _, blocks = messages.held_message(
        run_id="r1",
        workflow="react",
        coordinator="script",
        tool="slack.post_message",
        number=1,
        arguments={"text": "<" * 3000},
        deadline=time.time() + 60,
        seq=3,
    )
    text = blocks[0]["text"]["text"]
    assert len(text) <= 3000
    shown = text.split("```")[1]
    assert re.fullmatch(r'\{"text":"(&lt;)+… \(\d+ more chars\)', shown), shown


def test_the_outcome_names_where_the_call_was_decided() -> None:
    assert messages.outcome_text(True, "ok", None, False, "console") == (
        ":white_check_mark: Approved in the console (ok)"
    )
    assert messages.outcome_text(False, "no", None, False, "console") == (
        ":x: Denied in the console: no"
    )
    assert messages.outcome_text(False, "no", None, False, "control") == (
        ":x: Denied with `tandem deny`: no"
    )
