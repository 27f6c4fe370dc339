"""The built-in `github` plugin, and the GitHub stand-in it is tested against.

First githubkit itself against the stand-in: what the stand-in serves parses into
githubkit's models, and its errors and rate limits are GitHub's. Then the plugin: loaded as
the plugin server loads it (for cases that need another environment), and through a real
daemon whose workflow script calls `tools.github.pr_status`.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import REPO, Project
from githubkit import GitHub, UnauthAuthStrategy
from githubkit.exception import PrimaryRateLimitExceeded, RequestFailed, SecondaryRateLimitExceeded
from githubkit.webhooks import parse_obj
from tandem.config import builtin_plugins_dir
from tandem.testing import workspace
from tandem.testing.github_api import GitHubStandIn, pull_request_event, pull_request_json
from tandem_sdk import RunContext, ToolError
from tandem_sdk.plugin import ToolDefinition
from tandem_sdk.plugin_server import collect_tools, load_module

OWNER, NAME = workspace.OWNER, workspace.REPO
SEEDS = {pull.number: pull for pull in workspace.PULLS}
MISSING = workspace.MISSING_PULL
PLUGIN = REPO / "plugins" / "github"


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with GitHubStandIn() as stand_in:
        yield stand_in


def client(github: GitHubStandIn, token: str | None = None, *, anonymous: bool = False) -> Any:
    """githubkit's client, made as the plugin makes it: no HTTP cache, no retries of its own.
    Keep it in a variable: its namespaces hold it only weakly."""
    auth: Any = UnauthAuthStrategy() if anonymous else (token or github.token)
    return GitHub(
        auth, base_url=github.base_url, http_cache=False, auto_retry=False, trust_env=False
    )


def pull_url(number: int, rest: str = "") -> str:
    return f"https://github.com/{OWNER}/{NAME}/pull/{number}{rest}"


# -- githubkit against the stand-in -------------------------------------------------------


@pytest.mark.parametrize("version", ["2022-11-28", "2026-03-10"])
def test_every_seeded_pull_parses_into_githubkit_model(github: GitHubStandIn, version: str) -> None:
    gh = client(github)
    for number, seed in SEEDS.items():
        response = gh.rest.pulls.get(OWNER, NAME, number, headers={"X-GitHub-Api-Version": version})
        pull = response.parsed_data  # githubkit validates the whole body here
        assert (pull.number, pull.state, pull.merged) == (number, seed.state, seed.merged)
        assert (pull.merged_at is not None) == seed.merged
        assert (pull.closed_at is not None) == (seed.state == "closed")
        assert pull.html_url == pull.links.html.href == seed.html_url
        assert pull.url == f"{github.base_url}/repos/{OWNER}/{NAME}/pulls/{number}"
        assert pull.user.login == seed.author and pull.head.ref == seed.branch
        assert pull.base.repo.full_name == f"{OWNER}/{NAME}" and pull.base.ref == "main"
        assert (pull.merged_by is not None) == seed.merged
        assert response.json() == pull_request_json(number, github.base_url, api_version=version)
        assert ("merge_commit_sha" in response.json()) == (version == "2022-11-28")
        assert response.headers["x-github-api-version-selected"] == version
    assert github.problems == []


def test_responses_carry_githubs_headers(github: GitHubStandIn) -> None:
    gh, anonymous_gh = client(github), client(github, anonymous=True)
    first = gh.rest.pulls.get(OWNER, NAME, 101)
    second = gh.rest.pulls.get(OWNER, NAME, 102)
    headers = second.headers
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(r"[0-9A-F]{4}:[0-9A-F]{6}(:[0-9A-F]{7}){2}:[0-9A-F]{8}",
                        headers["x-github-request-id"])  # fmt: skip
    assert headers["x-github-request-id"] != first.headers["x-github-request-id"]
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-resource"]) == ("5000", "core")
    assert (headers["x-ratelimit-used"], headers["x-ratelimit-remaining"]) == ("2", "4998")
    assert 0 < int(headers["x-ratelimit-reset"]) - time.time() <= 3601
    assert headers["cache-control"].startswith("private") and headers["etag"].startswith('W/"')

    anonymous = anonymous_gh.rest.pulls.get(OWNER, NAME, 103)
    assert anonymous.parsed_data.state == "open"
    assert (anonymous.headers["x-ratelimit-limit"], anonymous.headers["x-ratelimit-used"]) == (
        "60", "1",
    )  # fmt: skip
    assert anonymous.headers["cache-control"].startswith("public")
    assert [(c.path, c.token) for c in github.calls] == [
        (f"/repos/{OWNER}/{NAME}/pulls/101", github.token),
        (f"/repos/{OWNER}/{NAME}/pulls/102", github.token),
        (f"/repos/{OWNER}/{NAME}/pulls/103", None),  # no Authorization header was sent
    ]
    limits = gh.rest.rate_limit.get()
    assert limits.parsed_data.resources.core.used == 2, "GET /rate_limit costs nothing"


def test_unknown_pull_or_repository_is_githubs_404(github: GitHubStandIn) -> None:
    gh = client(github)
    for owner, repo, number in ((OWNER, NAME, MISSING), (OWNER, "gadgets", 101)):
        with pytest.raises(RequestFailed) as caught:
            gh.rest.pulls.get(owner, repo, number)
        assert caught.value.response.status_code == 404
        assert caught.value.response.json() == {
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#get-a-pull-request",
            "status": "404",
        }
    assert github.problems == [], "a 404 for a missing pull request is GitHub's answer"


def test_wrong_or_revoked_token_is_401_bad_credentials(github: GitHubStandIn) -> None:
    bad_credentials = {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    gh, wrong = client(github), client(github, token="ghp_" + "x" * 36)
    with pytest.raises(RequestFailed) as caught:
        wrong.rest.pulls.get(OWNER, NAME, 101)
    assert caught.value.response.status_code == 401
    assert caught.value.response.json() == bad_credentials

    assert gh.rest.pulls.get(OWNER, NAME, 101).parsed_data.merged
    github.revoke_token()
    with pytest.raises(RequestFailed) as caught:
        gh.rest.pulls.get(OWNER, NAME, 101)
    assert caught.value.response.json() == bad_credentials


@pytest.mark.parametrize("anonymous", [False, True], ids=["token", "no-token"])
def test_spent_primary_rate_limit_is_a_403_until_reset(
    github: GitHubStandIn, anonymous: bool
) -> None:
    github.exhaust_rate_limit(reset_in_s=120)
    reset_expected = time.time() + 120
    gh = client(github, anonymous=anonymous)
    with pytest.raises(PrimaryRateLimitExceeded) as caught:
        gh.rest.pulls.get(OWNER, NAME, 101)
    response = caught.value.response
    assert response.status_code == 403
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert abs(int(response.headers["x-ratelimit-reset"]) - reset_expected) <= 2
    assert timedelta(seconds=115) < caught.value.retry_after <= timedelta(seconds=122)
    message = response.json()["message"]
    assert message.startswith("API rate limit exceeded for ")
    assert ("Authenticated requests get a higher rate limit" in message) == anonymous
    assert response.json()["documentation_url"].endswith("rate-limits-for-the-rest-api")


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_answers_retry_after(github: GitHubStandIn, status: int) -> None:
    gh = client(github)
    github.secondary_limit(times=2, retry_after=30, status=status)
    for _ in range(2):
        with pytest.raises(SecondaryRateLimitExceeded) as caught:
            gh.rest.pulls.get(OWNER, NAME, 101)
        response = caught.value.response
        assert response.status_code == status and response.headers["retry-after"] == "30"
        assert caught.value.retry_after == timedelta(seconds=30)
        assert int(response.headers["x-ratelimit-remaining"]) > 0, "primary quota is left"
        assert "exceeded a secondary rate limit" in response.json()["message"]
    assert gh.rest.pulls.get(OWNER, NAME, 101).status_code == 200


def test_unsupported_api_version_and_unknown_endpoints(github: GitHubStandIn) -> None:
    gh = client(github)
    with pytest.raises(RequestFailed) as caught:
        gh.rest.pulls.get(OWNER, NAME, 101, headers={"X-GitHub-Api-Version": "v3"})
    assert caught.value.response.status_code == 400
    assert '"v3", is not a supported version' in caught.value.response.json()["message"]
    assert github.problems == []
    with pytest.raises(RequestFailed):
        gh.rest.repos.get(OWNER, NAME)
    assert github.problems == [f"GET /repos/{OWNER}/{NAME}: not implemented by the stand-in"]


def test_enterprise_style_base_path() -> None:
    with GitHubStandIn(path_prefix="/api/v3") as github:
        assert github.base_url.endswith("/api/v3")
        gh = client(github)
        assert gh.rest.pulls.get(OWNER, NAME, 104).parsed_data.merged
        assert github.calls[-1].path == f"/api/v3/repos/{OWNER}/{NAME}/pulls/104"
        assert github.problems == []


def test_set_pull_merges_closes_and_reopens(github: GitHubStandIn) -> None:
    gh = client(github)
    before = datetime.now(UTC).replace(microsecond=0)
    github.set_pull(103, merged=True)
    merged = gh.rest.pulls.get(OWNER, NAME, 103).parsed_data
    assert (merged.state, merged.merged) == ("closed", True)
    assert merged.merged_at is not None and merged.merged_at >= before
    assert merged.merged_by is not None and merged.merged_by.login == "grace"
    github.set_pull(102, state="open")
    reopened = gh.rest.pulls.get(OWNER, NAME, 102).parsed_data
    assert (reopened.state, reopened.closed_at, reopened.merged) == ("open", None, False)
    with pytest.raises(ValueError, match="cannot set"):
        github.set_pull(101, state="open")


def test_pull_request_event_is_a_valid_webhook_delivery(github: GitHubStandIn) -> None:
    merged = parse_obj("pull_request", pull_request_event(101))
    assert type(merged).__name__ == "WebhookPullRequestClosed"
    assert (merged.action, merged.number, merged.pull_request.merged) == ("closed", 101, True)
    assert merged.repository.full_name == f"{OWNER}/{NAME}" and merged.sender.login == "grace"
    assert merged.pull_request.url == f"https://api.github.com/repos/{OWNER}/{NAME}/pulls/101"
    assert merged.pull_request.html_url == pull_url(101)

    closed = parse_obj("pull_request", pull_request_event(102))
    assert closed.pull_request.merged is False and closed.pull_request.merged_at is None
    opened = parse_obj("pull_request", pull_request_event(103, action="opened"))
    assert type(opened).__name__ == "WebhookPullRequestOpened"
    with pytest.raises(ValueError, match="it is open"):
        pull_request_event(103)

    github.set_pull(103, merged=True)
    delivered = github.pull_request_event(103)
    assert parse_obj("pull_request", delivered).pull_request.merged is True
    assert delivered["pull_request"]["url"].startswith(github.base_url)


# -- the plugin, loaded as the plugin server loads it -------------------------------------


def load_plugin() -> dict[str, ToolDefinition]:
    """A fresh module each time, so each test gets its own lazily made client."""
    return collect_tools("github", load_module("github", PLUGIN / "plugin.py"))


def context(seconds_left: float | None = 30) -> RunContext:
    return RunContext("run-1", "probe", time.time() + seconds_left if seconds_left else 0.0)


def outcome(tools: dict[str, ToolDefinition], ctx: RunContext, **arguments: Any) -> Any:
    try:
        return tools["pr_status"].invoke(json.dumps(arguments), ctx)
    except ToolError as error:
        return {"error": error.type, "retryable": error.retryable, "reason": error.reason}


@pytest.fixture
def plugin_env(monkeypatch: pytest.MonkeyPatch, github: GitHubStandIn) -> GitHubStandIn:
    for name, value in github.env.items():
        monkeypatch.setenv(name, value)
    return github


def test_the_tool_is_read_only_and_its_schema_has_the_two_ways() -> None:
    tools = load_plugin()
    assert sorted(tools) == ["create_pull_request", "pr_status"]
    assert tools["pr_status"].side_effects is False
    schema = tools["pr_status"].input_schema
    assert sorted(schema["properties"]) == ["number", "owner", "repo", "url"]
    assert schema.get("required", []) == [] and schema["additionalProperties"] is False


def test_create_pull_request_opens_one_and_says_why_github_refused(
    plugin_env: GitHubStandIn,
) -> None:
    tool = load_plugin()["create_pull_request"]
    marks = tool.annotations
    assert (marks.read_only, marks.destructive, marks.open_world) == (False, False, True)
    assert json.loads(tool.dry_run_result_json)["dry_run"] is True

    def create(**arguments: Any) -> Any:
        fields = {"owner": OWNER, "repo": NAME, "title": "T", "head": "rw", "base": "main"}
        try:
            return tool.invoke(json.dumps({**fields, **arguments}), context())
        except ToolError as error:
            return {"error": error.type, "reason": error.reason}

    unpushed = create()
    assert unpushed["error"] == "invalid" and "head" in unpushed["reason"], unpushed
    plugin_env.push_branch("rw")
    opened = create(body="The evidence.", draft=True)
    assert opened == {
        "url": f"https://github.com/{OWNER}/{NAME}/pull/106",
        "number": 106,
        "state": "open",
        "draft": True,
        "head": "rw",
        "base": "main",
    }
    planned = json.loads(tool.dry_run_result_json)
    assert sorted(planned) == sorted([*opened, "dry_run"]), "a dry run answers the same shape"
    assert plugin_env.calls[-1].body == {
        "title": "T",
        "head": "rw",
        "base": "main",
        "body": "The evidence.",
        "draft": True,
    }
    again = create()
    assert again["error"] == "invalid"
    assert f"A pull request already exists for {OWNER}:rw." in again["reason"]
    missing = create(repo="gadgets")
    assert missing["error"] == "not_found" and f"repository {OWNER}/gadgets" in missing["reason"]
    plugin_env.exhaust_rate_limit()  # a POST counts against the limit as a GET does
    assert create(base="develop")["error"] == "rate_limited"
    assert [c.status for c in plugin_env.calls] == [422, 201, 422, 404, 403]
    assert plugin_env.problems == []


def test_without_a_token_the_plugin_reads_unauthenticated(
    plugin_env: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    tools = load_plugin()
    assert outcome(tools, context(), url=pull_url(105))["state"] == "merged"
    missing = outcome(tools, context(), url=pull_url(MISSING))
    assert missing["error"] == "not_found" and "no GITHUB_TOKEN is set" in missing["reason"]
    assert [call.token for call in plugin_env.calls] == [None, None]
    fields = {"owner": OWNER, "repo": NAME, "title": "T", "head": "rw", "base": "main"}
    with pytest.raises(ToolError) as unauthenticated:
        tools["create_pull_request"].invoke(json.dumps(fields), context())
    assert unauthenticated.value.type == "bad_credentials"
    assert "no GITHUB_TOKEN is set" in unauthenticated.value.reason
    assert "401 Requires authentication" in unauthenticated.value.reason
    assert plugin_env.calls[-1].status == 401


def test_secondary_limit_is_waited_out_only_within_the_time_left(
    plugin_env: GitHubStandIn,
) -> None:
    tools = load_plugin()
    plugin_env.secondary_limit(times=1, retry_after=0)
    assert outcome(tools, context(), number=103, owner=OWNER, repo=NAME)["state"] == "open"
    assert [call.status for call in plugin_env.calls] == [403, 200]

    plugin_env.secondary_limit(times=1, retry_after=0)
    unknown_deadline = outcome(tools, context(None), number=103, owner=OWNER, repo=NAME)
    assert unknown_deadline["error"] == "rate_limited" and unknown_deadline["retryable"]

    plugin_env.secondary_limit(times=2, retry_after=0)
    twice = outcome(tools, context(), number=103, owner=OWNER, repo=NAME)
    assert twice["error"] == "rate_limited", "a second secondary limit is not waited out"
    assert [call.status for call in plugin_env.calls] == [403, 200, 403, 403, 403]


def test_enterprise_base_url_and_unreachable_api(monkeypatch: pytest.MonkeyPatch) -> None:
    with GitHubStandIn(path_prefix="/api/v3") as github:
        for name, value in github.env.items():
            monkeypatch.setenv(name, value)
        ghes_page = "https://github.acme.example/acme/widgets/pull/104/commits"
        assert outcome(load_plugin(), context(), url=ghes_page)["state"] == "merged"
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("GITHUB_API_URL", closed)
    down = outcome(load_plugin(), context(), url=pull_url(101))
    assert (down["error"], down["retryable"]) == ("unreachable", True)
    assert closed in down["reason"]


# -- the plugin through a real daemon ------------------------------------------------------

PROBE = """
from tandem_sdk import ToolError

def handler(trigger, tools, virtual_files, subagent):
    outcomes = []
    for arguments in trigger["calls"]:
        try:
            outcomes.append(tools.github.pr_status(**arguments))
        except ToolError as error:
            outcomes.append(
                {"error": error.type, "retryable": error.retryable, "reason": error.reason}
            )
    return outcomes
"""


def test_pr_status_through_a_daemon(
    project: Project, start_daemon: Callable[..., Any], github: GitHubStandIn
) -> None:
    assert builtin_plugins_dir() / "github" == PLUGIN, "a built-in plugin: every project has it"
    assert not (project.root / "plugins" / "github").exists(), "the built-in one is used"
    project.workflow("probe", tools=["github.pr_status"], script=PROBE)
    daemon = start_daemon(project, env=github.env)

    def probe(*calls: dict[str, Any]) -> list[Any]:
        record = daemon.run("probe", {"calls": list(calls)})
        assert record.status == "succeeded", record.error
        return list(record.output)

    found = probe(
        {"url": pull_url(101)},
        {"url": pull_url(102, "/files")},
        {"url": pull_url(103, "#issuecomment-42")},
        {"owner": OWNER, "repo": NAME, "number": 104},
        {"url": "https://github.acme.example/acme/widgets/pull/105"},  # an Enterprise host
    )
    assert found[0] == {
        "url": pull_url(101), "owner": OWNER, "repo": NAME, "number": 101,
        "title": "Add the widget cache", "state": "merged",
        "merged_at": "2025-11-26T09:17:00Z", "closed_at": "2025-11-26T09:17:00Z",
        "author": "ada",
    }  # fmt: skip
    assert [(o["number"], o["state"]) for o in found] == [
        (101, "merged"), (102, "closed"), (103, "open"), (104, "merged"), (105, "merged")
    ]  # fmt: skip
    assert found[1]["merged_at"] is None and found[1]["closed_at"] is not None
    assert found[2]["merged_at"] is None and found[2]["closed_at"] is None
    assert {(c.token, c.api_version, c.status) for c in github.calls} == {
        (github.token, "2022-11-28", 200)
    }

    failed = probe(
        {"url": pull_url(MISSING)},
        {"url": f"https://github.com/{OWNER}/{NAME}/issues/7"},
        {"url": f"https://github.com/{OWNER}/{NAME}/pulls/103"},
        {"url": f"https://github.com/{OWNER}/{NAME}/pull/abc"},
        {"url": pull_url(101), "number": 101},
        {},
        {"owner": OWNER, "number": 101},
    )
    missing, *malformed = failed
    assert (missing["error"], missing["retryable"]) == ("not_found", False)
    assert f"{OWNER}/{NAME}#{MISSING}" in missing["reason"]
    assert [m["error"] for m in malformed] == ["bad_url"] * 6
    assert all("https://github.com/OWNER/REPO/pull/NUMBER" in m["reason"] for m in malformed)
    assert (
        "issue" in malformed[0]["reason"] and "/pull/NUMBER, not /pulls/" in malformed[1]["reason"]
    )
    assert "not both" in malformed[3]["reason"] and "repo missing" in malformed[5]["reason"]
    assert len(github.calls) == 6, "only the well-formed request reached GitHub"

    github.exhaust_rate_limit(reset_in_s=600)
    reset = datetime.fromtimestamp(int(time.time() + 600) + 1, UTC)
    [limited] = probe({"url": pull_url(101)})
    assert (limited["error"], limited["retryable"]) == ("rate_limited", True)
    said = re.search(r"spent until (\S+), in (\d+) s", limited["reason"])
    assert said is not None, limited["reason"]
    assert abs(datetime.fromisoformat(said[1]) - reset) <= timedelta(seconds=3)
    assert 590 <= int(said[2]) <= 601  # the reset is a whole second, rounded up

    github.revoke_token()
    [refused] = probe({"url": pull_url(101)})
    assert (refused["error"], refused["retryable"]) == ("bad_credentials", False)
    assert github.problems == []
