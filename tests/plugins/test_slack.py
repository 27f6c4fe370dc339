"""The `slack` plugin, and the Slack Web API stand-in it is tested against.

The wire tests drive the official slack_sdk WebClient against the stand-in, so the stand-in
is held to what the real client expects. The plugin tests run the built-in plugin in a real
daemon, called by a workflow script exactly as `pr_merged` calls it.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Daemon, Project
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from tandem.testing import workspace
from tandem.testing.slack_api import AddedReaction, SlackStandIn

ENG = workspace.CHANNELS[0].id
RANDOM = workspace.CHANNELS[1].id
BOT = workspace.BOT.id
ENG_NEWEST_FIRST = sorted((m.ts for m in workspace.MESSAGES if m.channel == ENG), reverse=True)
LUNCH, REVIEW, SHIPPED, ABANDONED, TYPO, LANDED, MIXED, ISSUE = sorted(ENG_NEWEST_FIRST)
PULL = f"{workspace.WEB}/{workspace.OWNER}/{workspace.REPO}/pull"

# Calls the tools named in the trigger, one by one, and reports each result or tool error.
PROBE = """
import time
from tandem_sdk import ToolError

def handler(trigger, tools, virtual_files, subagent):
    outcomes = []
    for tool, arguments in trigger["calls"]:
        started = time.monotonic()
        try:
            outcome = {"result": tools.call("slack." + tool, arguments)}
        except ToolError as error:
            outcome = {"error": error.type, "message": error.reason, "retryable": error.retryable}
        outcome["seconds"] = time.monotonic() - started
        outcomes.append(outcome)
    return outcomes
"""


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def fresh(slack: SlackStandIn) -> None:
    slack.reset()


@pytest.fixture(scope="module")
def daemon(slack: SlackStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the plugin tests of this module; its `slack` plugin reaches the
    stand-in, which each test resets."""
    project = Project(tmp_path_factory.mktemp("slack") / "project")
    project.workflow("probe", tools=["slack.*"], script=PROBE)
    started = Daemon(project, env=slack.env)
    yield started
    started.close()


def web(slack: SlackStandIn, token: str | None = "", **options: Any) -> WebClient:
    client = WebClient(
        token=slack.token if token == "" else token, base_url=slack.base_url, **options
    )
    client.proxy = None  # never a proxy from the environment: the stand-in is on loopback
    return client


def post(slack: SlackStandIn, method: str, body: str, content_type: str) -> dict[str, Any]:
    """A request slack_sdk would not send, straight to the stand-in (never via a proxy)."""
    request = urllib.request.Request(
        slack.base_url + method, body.encode(), {"Content-Type": content_type}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return dict(json.load(answer))


def probe(daemon: Daemon, *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    record = daemon.run("probe", {"calls": [list(call) for call in calls]})
    assert record.status == "succeeded", record.error
    return list(record.output)


def outcomes(slack: SlackStandIn, method: str) -> list[str]:
    return [call.outcome for call in slack.calls if call.method == method]


# -- the stand-in, as the real slack_sdk client sees it -----------------------------------


def test_history_pages_newest_first_with_cursors(slack: SlackStandIn) -> None:
    client = web(slack)
    first = client.conversations_history(channel=ENG, limit=3)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    assert first["has_more"] is True
    assert first["pin_count"] == 0
    assert first["channel_actions_ts"] is None
    assert first["channel_actions_count"] == 0
    cursor = first["response_metadata"]["next_cursor"]
    assert base64.b64decode(cursor).decode() == "next_ts:" + ENG_NEWEST_FIRST[3].replace(".", "")

    # slack_sdk's iterator refills one response object page after page: copy each page.
    pages = [dict(page.data) for page in client.conversations_history(channel=ENG, limit=3)]
    assert [len(page["messages"]) for page in pages] == [3, 3, 2]
    assert [m["ts"] for page in pages for m in page["messages"]] == ENG_NEWEST_FIRST
    assert pages[-1]["has_more"] is False
    assert pages[-1]["response_metadata"]["next_cursor"] == ""

    by_ts = {m["ts"]: m for page in pages for m in page["messages"]}
    assert by_ts[LANDED] == {
        "type": "message",
        "user": "U0GRACE001",
        "text": f"Landed <{PULL}/105>",
        "ts": LANDED,
        "team": workspace.TEAM_ID,
        "reactions": [{"name": "merged", "users": [BOT], "count": 1}],
    }
    assert "reactions" not in by_ts[LUNCH], "Slack leaves out reactions a message lacks"
    assert slack.problems == []


def test_conversations_list_returns_full_channel_objects(slack: SlackStandIn) -> None:
    pages = [dict(page.data) for page in web(slack).conversations_list(limit=1)]
    assert [[c["name"] for c in page["channels"]] for page in pages] == [["eng"], ["random"]]
    eng = pages[0]["channels"][0]
    assert set(eng) == {
        "id", "name", "is_channel", "is_group", "is_im", "is_mpim", "is_private", "created",
        "is_archived", "is_general", "unlinked", "name_normalized", "is_shared",
        "is_org_shared", "is_pending_ext_shared", "pending_shared", "context_team_id",
        "updated", "parent_conversation", "creator", "is_ext_shared", "shared_team_ids",
        "pending_connected_team_ids", "is_member", "topic", "purpose", "previous_names",
        "num_members",
    }  # fmt: skip
    assert (eng["id"], eng["is_channel"], eng["is_private"]) == (ENG, True, False)
    assert eng["topic"]["value"] == workspace.CHANNELS[0].topic
    assert pages[-1]["response_metadata"]["next_cursor"] == ""
    assert web(slack).conversations_list(types="im")["channels"] == []


def test_reactions_add_records_and_refuses_a_second_time(slack: SlackStandIn) -> None:
    client = web(slack)
    assert client.reactions_add(channel=ENG, timestamp=LUNCH, name="eyes").data == {"ok": True}
    with pytest.raises(SlackApiError) as again:
        client.reactions_add(channel=ENG, timestamp=LUNCH, name="eyes")
    assert again.value.response.status_code == 200, "Slack's API errors are HTTP 200"
    assert again.value.response.data == {"ok": False, "error": "already_reacted"}
    with pytest.raises(SlackApiError) as seeded:
        client.reactions_add(channel=ENG, timestamp=LANDED, name="merged")
    assert seeded.value.response["error"] == "already_reacted"

    # A JSON body, with the token in the Authorization header, as Slack accepts it.
    client.api_call("reactions.add", json={"channel": ENG, "timestamp": LUNCH, "name": "tada"})
    assert slack.reactions_added == [(ENG, LUNCH, "eyes"), AddedReaction(ENG, LUNCH, "tada")]
    assert slack.reactions(ENG, LUNCH) == {"eyes": [BOT], "tada": [BOT]}
    assert slack.reactions(ENG, LANDED) == {"merged": [BOT]}
    assert slack.problems == []


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"channel": "C0NOWHERE1", "timestamp": LUNCH, "name": "eyes"}, "channel_not_found"),
        ({"channel": ENG, "timestamp": "1764460800.999999", "name": "eyes"}, "message_not_found"),
        ({"channel": ENG, "timestamp": "yesterday", "name": "eyes"}, "bad_timestamp"),
        ({"channel": ENG, "timestamp": LUNCH, "name": "Not An Emoji"}, "invalid_name"),
    ],
)
def test_reactions_add_errors(slack: SlackStandIn, arguments: dict[str, str], error: str) -> None:
    with pytest.raises(SlackApiError) as refused:
        web(slack).reactions_add(**arguments)
    assert refused.value.response.data == {"ok": False, "error": error}
    assert slack.reactions_added == []


def test_tokens(slack: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as wrong:
        web(slack, token="xoxb-not-the-one").auth_test()
    assert wrong.value.response.data == {"ok": False, "error": "invalid_auth"}
    with pytest.raises(SlackApiError) as missing:
        web(slack, token=None).auth_test()
    assert missing.value.response["error"] == "not_authed"
    me = web(slack).auth_test()
    assert (me["user_id"], me["team_id"]) == (BOT, workspace.TEAM_ID)

    # slack_sdk always sends the token as a header; Slack also reads a `token` form field,
    # but not a token inside a JSON body.
    form = post(slack, "auth.test", f"token={slack.token}", "application/x-www-form-urlencoded")
    assert form["user_id"] == BOT
    body = json.dumps({"token": slack.token})
    assert post(slack, "auth.test", body, "application/json; charset=utf-8") == {
        "ok": False,
        "error": "not_authed",
    }
    assert [call.token for call in slack.calls] == [
        "xoxb-not-the-one",
        None,
        slack.token,
        slack.token,
        None,
    ]


def test_unknown_method_and_malformed_requests_are_problems(slack: SlackStandIn) -> None:
    client = web(slack)
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("chat.nothing")
    assert unknown.value.response.data == {
        "ok": False,
        "error": "unknown_method",
        "req_method": "chat.nothing",
    }
    with pytest.raises(SlackApiError) as no_channel:
        client.api_call("conversations.history", params={"limit": 2})
    assert no_channel.value.response["error"] == "invalid_arguments"
    assert slack.problems == [
        "POST chat.nothing: not a method the stand-in serves",
        "POST conversations.history: missing channel",
    ]


def test_rate_limit_is_a_429_that_slack_sdk_waits_out(slack: SlackStandIn) -> None:
    slack.rate_limit("conversations.history", times=1, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        web(slack).conversations_history(channel=ENG)
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert limited.value.response.data == {"ok": False, "error": "ratelimited"}

    slack.rate_limit("conversations.history", times=1, retry_after=1)
    patient = web(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    started = time.monotonic()
    assert len(patient.conversations_history(channel=ENG)["messages"]) == 8
    assert time.monotonic() - started >= 1.0, "slack_sdk waited as Retry-After asked"
    assert outcomes(slack, "conversations.history") == ["ratelimited", "ratelimited", "ok"]


# -- the plugin, in a real daemon ----------------------------------------------------------


def test_get_messages_by_name_or_id_with_links_and_reactions(
    slack: SlackStandIn, daemon: Daemon
) -> None:
    slack.page_limit = 1  # Slack may give fewer than asked: the plugin follows cursors
    by_name, by_id, other, too_many = probe(
        daemon,
        ("get_messages", {"channel": "#eng", "limit": 20}),
        ("get_messages", {"channel": ENG, "limit": 2}),
        ("get_messages", {"channel": "random"}),
        ("get_messages", {"channel": "eng", "limit": 201}),
    )
    messages = by_name["result"]
    assert [m["ts"] for m in messages] == ENG_NEWEST_FIRST
    found = {m["ts"]: m for m in messages}
    assert found[SHIPPED] == {
        "ts": SHIPPED,
        "user": "U0ADA00001",
        "text": f"Shipped <{PULL}/101|acme/widgets#101> and <{PULL}/104> :tada:",
        "reactions": [],
        "links": [f"{PULL}/101", f"{PULL}/104"],
    }
    assert found[MIXED]["links"] == [f"{PULL}/103", f"{PULL}/101"]
    assert found[LANDED]["reactions"] == ["merged"]
    assert found[ISSUE]["links"] == [f"{workspace.WEB}/acme/widgets/issues/7"]
    assert found[ISSUE]["reactions"] == ["eyes"]
    assert found[LUNCH]["links"] == []

    assert by_id["result"] == messages[:2]
    assert [m["text"] for m in other["result"]] == [f"FYI <{PULL}/101>"]
    assert too_many["error"] == "invalid_limit"
    assert outcomes(slack, "conversations.history").count("ok") == 8 + 2 + 1
    lists = [call for call in slack.calls if call.method == "conversations.list"]
    assert any("cursor" in call.params for call in lists), "#random is on the second page"
    assert slack.problems == []


def test_add_reaction_is_recorded_and_already_reacted_is_a_tool_error(
    slack: SlackStandIn, daemon: Daemon
) -> None:
    added, again, seeded, nowhere, no_message = probe(
        daemon,
        ("add_reaction", {"channel": "eng", "ts": SHIPPED, "name": ":merged:"}),
        ("add_reaction", {"channel": "#eng", "ts": SHIPPED, "name": "merged"}),
        ("add_reaction", {"channel": ENG, "ts": LANDED, "name": "merged"}),
        ("add_reaction", {"channel": "nowhere", "ts": SHIPPED, "name": "merged"}),
        ("add_reaction", {"channel": "eng", "ts": "1764460800.999999", "name": "merged"}),
    )
    assert added["result"] == {"ok": True, "channel": ENG, "ts": SHIPPED, "name": "merged"}
    assert slack.reactions_added == [(ENG, SHIPPED, "merged")]
    assert slack.reactions(ENG, SHIPPED) == {"merged": [BOT]}
    for refused in (again, seeded):
        assert refused["error"] == "already_reacted"
        assert refused["retryable"] is False
        assert ":merged:" in refused["message"]
    assert nowhere["error"] == "channel_not_found"
    assert "#nowhere" in nowhere["message"]
    assert no_message["error"] == "message_not_found"
    assert slack.reactions(ENG, LANDED) == {"merged": [BOT]}, "still one reaction"


def test_an_invalid_token_is_a_clear_error(slack: SlackStandIn, daemon: Daemon) -> None:
    slack.token = "xoxb-rotated-since"  # the daemon's token is now a revoked one
    [refused] = probe(daemon, ("get_messages", {"channel": ENG}))
    assert refused["error"] == "invalid_auth"
    assert refused["retryable"] is False
    assert "SLACK_BOT_TOKEN" in refused["message"]
    assert outcomes(slack, "conversations.history") == ["invalid_auth"]


def test_a_rate_limit_is_waited_out_when_there_is_time(slack: SlackStandIn, daemon: Daemon) -> None:
    slack.rate_limit("conversations.history", times=1, retry_after=1)
    [read] = probe(daemon, ("get_messages", {"channel": ENG, "limit": 1}))
    assert [m["ts"] for m in read["result"]] == ENG_NEWEST_FIRST[:1]
    assert read["seconds"] >= 1.0, "the plugin waited as Retry-After asked"
    assert outcomes(slack, "conversations.history") == ["ratelimited", "ok"]


def test_a_rate_limit_longer_than_the_time_left_fails_at_once(
    slack: SlackStandIn, daemon: Daemon
) -> None:
    slack.rate_limit("reactions.add", times=1, retry_after=120)  # the call has 30 s at most
    [limited] = probe(daemon, ("add_reaction", {"channel": ENG, "ts": LUNCH, "name": "eyes"}))
    assert limited["error"] == "ratelimited"
    assert limited["retryable"] is True
    assert "retry after 120 s" in limited["message"]
    assert limited["seconds"] < 10, "failed at once instead of waiting"
    assert outcomes(slack, "reactions.add") == ["ratelimited"]
    assert slack.reactions_added == []


def test_a_missing_token_is_a_clear_error_before_any_request(
    slack: SlackStandIn, project: Project, start_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    project.workflow("probe", tools=["slack.*"], script=PROBE)
    tokenless = start_daemon(project, env={"SLACK_API_URL": slack.base_url})
    [refused] = probe(tokenless, ("get_messages", {"channel": "eng"}))
    assert refused["error"] == "not_authed"
    assert "SLACK_BOT_TOKEN is not set" in refused["message"]
    assert slack.calls == []
