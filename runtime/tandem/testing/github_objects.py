"""GitHub's JSON objects for the seeded repository of `tandem.testing.workspace`, as the REST
API answers them and as webhooks deliver them: the complete pull request object (with its
head and base refs, repository, users) and the `pull_request` event body.

    pull_request_json(101)                       # GET /repos/acme/widgets/pulls/101
    pull_request_event(101, action="closed")     # the X-GitHub-Event: pull_request POST

Ids, node ids and SHAs are derived from the objects' names, so they are stable across runs
and within GitHub's ranges. The objects follow the API versions GitHub serves, `VERSIONS`:
`2022-11-28` (the default) and `2026-03-10`, which drops `merge_commit_sha`, `assignee` and
`has_downloads` from them. `tandem.testing.github_api` serves them over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tandem.testing.workspace import OWNER, PULLS, REPO, WEB, SeedPull

JSON = dict[str, Any]
API = "https://api.github.com"
VERSIONS = ("2022-11-28", "2026-03-10")  # 2022-11-28 is what GitHub assumes when none is sent
_CREATED = datetime(2025, 11, 24, 9, 0, tzinfo=UTC)  # the seeded pulls open from here on
# fmt: off
_REPO_URLS = (  # (field, path after the repository's API URL): GitHub's URL templates
    ("forks_url", "/forks"), ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"), ("teams_url", "/teams"),
    ("hooks_url", "/hooks"), ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"), ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"), ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"), ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"), ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"), ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"), ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"), ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"), ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"), ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"), ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"), ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"), ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"), ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"),
    ("labels_url", "/labels{/name}"), ("releases_url", "/releases{/id}"),
    ("deployments_url", "/deployments"),
)
# fmt: on


@dataclass(frozen=True)
class PullState:
    """One pull request as it is now (seeded, or changed by the stand-in's `set_pull`): what
    its objects are built from."""

    seed: SeedPull  # number, title, author, branch
    state: str  # GitHub's: "open" | "closed"
    merged: bool
    created_at: datetime
    closed_at: datetime | None
    merged_by: str | None
    # What `POST /repos/{owner}/{repo}/pulls` set; a seeded pull request has the defaults.
    body: str | None = None
    base: str = "main"
    draft: bool = False

    @property
    def number(self) -> int:
        return self.seed.number

    @classmethod
    def seeded(cls, seed: SeedPull) -> PullState:
        created = _CREATED + timedelta(hours=3 * (seed.number - PULLS[0].number))
        closed = created + timedelta(days=2, minutes=17) if seed.state == "closed" else None
        merger = reviewer(seed.author) if seed.merged else None
        return cls(seed, seed.state, seed.merged, created, closed, merger)


def pull_request_json(number: int, api_base: str = API, *, api_version: str = VERSIONS[0]) -> JSON:
    """The complete pull request object of a seeded pull request, as `GET
    /repos/{owner}/{repo}/pulls/{number}` answers it."""
    return pull_object(_seeded(number), api_base.rstrip("/"), WEB, api_version)


def pull_request_event(number: int, action: str = "closed", api_base: str = API) -> JSON:
    """A `pull_request` webhook delivery body (the `X-GitHub-Event: pull_request` POST) for
    a seeded pull request: action, number, pull_request, repository, organization, sender.
    An action its state contradicts ("closed" for an open one) is a ValueError."""
    return event_body(_seeded(number), action, api_base.rstrip("/"), WEB)


def _seeded(number: int) -> PullState:
    for seed in PULLS:
        if seed.number == number:
            return PullState.seeded(seed)
    raise ValueError(f"#{number} is not a seeded pull request: {[p.number for p in PULLS]}")


def event_body(pull: PullState, action: str, api: str, web: str) -> JSON:
    """The `pull_request` webhook delivery body for `pull` in the state it is in; `api` and
    `web` are the roots of the URLs in it."""
    needs = {"closed": "closed", "opened": "open", "reopened": "open"}.get(action, pull.state)
    if pull.state != needs:
        raise ValueError(f"no {action!r} event for pull request #{pull.number}: it is {pull.state}")
    sender = pull.merged_by if action == "closed" and pull.merged_by else pull.seed.author
    return {
        "action": action,
        "number": pull.number,
        "pull_request": pull_object(pull, api, web, VERSIONS[0]),
        "repository": _repository(api, web, VERSIONS[0]),
        "organization": _organization(api),
        "sender": _user(sender, api, web),
    }


def pull_object(pull: PullState, api: str, web: str, version: str) -> JSON:
    """The complete pull request object of `pull`, in API version `version`."""
    repo_api, repo_web = f"{api}/repos/{OWNER}/{REPO}", f"{web}/{OWNER}/{REPO}"
    url, issue = f"{repo_api}/pulls/{pull.number}", f"{repo_api}/issues/{pull.number}"
    head_sha, base_sha = _sha("head", pull.number), _sha("base", pull.number)
    merged_at = pull.closed_at if pull.merged else None
    # fmt: off
    body: JSON = {
        "url": url, "id": _id("PullRequest", pull.number),
        "node_id": _node_id("PullRequest", _id("PullRequest", pull.number)),
        "html_url": f"{repo_web}/pull/{pull.number}",
        "diff_url": f"{repo_web}/pull/{pull.number}.diff",
        "patch_url": f"{repo_web}/pull/{pull.number}.patch", "issue_url": issue,
        "number": pull.number, "state": pull.state, "locked": False, "title": pull.seed.title,
        "user": _user(pull.seed.author, api, web),
        "body": pull.body if pull.body is not None else f"{pull.seed.title}.\n\nDiscussed in #eng.",
        "created_at": _iso(pull.created_at),
        "updated_at": _iso(pull.closed_at or pull.created_at + timedelta(hours=4)),
        "closed_at": _iso(pull.closed_at), "merged_at": _iso(merged_at),
        "merge_commit_sha": _sha("merge", pull.number), "assignee": None, "assignees": [],
        "requested_reviewers": [] if pull.state == "closed" else [
            _user(reviewer(pull.seed.author), api, web)
        ],
        "requested_teams": [], "labels": [], "milestone": None, "draft": pull.draft,
        "commits_url": f"{url}/commits", "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{repo_api}/pulls/comments{{/number}}",
        "comments_url": f"{issue}/comments", "statuses_url": f"{repo_api}/statuses/{head_sha}",
        "head": _ref(pull.seed.branch, head_sha, api, web, version),
        "base": _ref(pull.base, base_sha, api, web, version),
        "_links": {
            name: {"href": href} for name, href in (
                ("self", url), ("html", f"{repo_web}/pull/{pull.number}"), ("issue", issue),
                ("comments", f"{issue}/comments"), ("review_comments", f"{url}/comments"),
                ("review_comment", f"{repo_api}/pulls/comments{{/number}}"),
                ("commits", f"{url}/commits"), ("statuses", f"{repo_api}/statuses/{head_sha}"),
            )
        },
        "author_association": "MEMBER", "auto_merge": None, "active_lock_reason": None,
        "merged": pull.merged, "mergeable": None if pull.state == "closed" else True,
        "rebaseable": None if pull.state == "closed" else True,
        "mergeable_state": "unknown" if pull.state == "closed" else "clean",
        "merged_by": _user(pull.merged_by, api, web) if pull.merged_by else None,
        "comments": pull.number % 4, "review_comments": pull.number % 3,
        "maintainer_can_modify": False, "commits": pull.number % 5 + 1,
        "additions": pull.number * 3 % 97, "deletions": pull.number * 7 % 41,
        "changed_files": pull.number % 6 + 1,
    }
    # fmt: on
    if version != VERSIONS[0]:  # 2026-03-10 removed them
        del body["merge_commit_sha"], body["assignee"]
    return body


def _ref(branch: str, sha: str, api: str, web: str, version: str) -> JSON:
    return {
        "label": f"{OWNER}:{branch}",
        "ref": branch,
        "sha": sha,
        "user": _user(OWNER, api, web, kind="Organization"),
        "repo": _repository(api, web, version),
    }


def _repository(api: str, web: str, version: str) -> JSON:
    repo_api, repo_web, host = f"{api}/repos/{OWNER}/{REPO}", f"{web}/{OWNER}/{REPO}", web[8:]
    # fmt: off
    body: JSON = {
        "id": _id("Repository", REPO), "node_id": _node_id("Repository", _id("Repository", REPO)),
        "name": REPO,
        "full_name": f"{OWNER}/{REPO}", "private": False,
        "owner": _user(OWNER, api, web, kind="Organization"), "html_url": repo_web,
        "description": "Widgets, cached and parsed", "fork": False, "url": repo_api,
        **{field: repo_api + path for field, path in _REPO_URLS},
        "created_at": "2024-03-05T10:11:12Z", "updated_at": "2025-11-26T12:00:00Z",
        "pushed_at": "2025-11-26T11:59:58Z", "git_url": f"git://{host}/{OWNER}/{REPO}.git",
        "ssh_url": f"git@{host}:{OWNER}/{REPO}.git", "clone_url": f"{repo_web}.git",
        "svn_url": repo_web, "homepage": None, "size": 1432, "stargazers_count": 12,
        "watchers_count": 12, "language": "Python", "has_issues": True, "has_projects": True,
        "has_downloads": True, "has_wiki": False, "has_pages": False, "has_discussions": False,
        "forks_count": 2, "mirror_url": None, "archived": False, "disabled": False,
        "open_issues_count": 4,
        "license": {"key": "mit", "name": "MIT License", "spdx_id": "MIT",
                    "url": f"{api}/licenses/mit", "node_id": "MDc6TGljZW5zZTEz"},
        "allow_forking": True, "is_template": False, "web_commit_signoff_required": False,
        "topics": [], "visibility": "public", "forks": 2, "open_issues": 4, "watchers": 12,
        "default_branch": "main",
    }
    # fmt: on
    if version != VERSIONS[0]:
        del body["has_downloads"]
    return body


def _user(login: str, api: str, web: str, *, kind: str = "User") -> JSON:
    user_api = f"{api}/users/{login}"
    # fmt: off
    return {
        "login": login, "id": user_id(login), "node_id": _node_id(kind, user_id(login)),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id(login)}?v=4",
        "gravatar_id": "", "url": user_api, "html_url": f"{web}/{login}",
        "followers_url": f"{user_api}/followers",
        "following_url": f"{user_api}/following{{/other_user}}",
        "gists_url": f"{user_api}/gists{{/gist_id}}",
        "starred_url": f"{user_api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{user_api}/subscriptions",
        "organizations_url": f"{user_api}/orgs", "repos_url": f"{user_api}/repos",
        "events_url": f"{user_api}/events{{/privacy}}",
        "received_events_url": f"{user_api}/received_events", "type": kind,
        "user_view_type": "public", "site_admin": False,
    }
    # fmt: on


def _organization(api: str) -> JSON:
    org_api = f"{api}/orgs/{OWNER}"
    # fmt: off
    return {
        "login": OWNER, "id": user_id(OWNER), "node_id": _node_id("Organization", user_id(OWNER)),
        "url": org_api, "repos_url": f"{org_api}/repos", "events_url": f"{org_api}/events",
        "hooks_url": f"{org_api}/hooks", "issues_url": f"{org_api}/issues",
        "members_url": f"{org_api}/members{{/member}}",
        "public_members_url": f"{org_api}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id(OWNER)}?v=4",
        "description": "Widgets for everyone",
    }
    # fmt: on


def reviewer(author: str) -> str:
    """Who reviews and merges an author's pull requests: the other person on the team."""
    return "grace" if author == "ada" else "ada"


def user_id(login: str) -> int:
    """The database id of the user or organization `login`."""
    return _id("User", login)


def _id(kind: str, key: object) -> int:
    """A stable database id, in GitHub's range."""
    digest = hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()
    return 10_000_000 + int(digest[:8], 16) % 900_000_000


def _node_id(kind: str, ident: int) -> str:
    """GitHub's legacy global node id: base64 of "0<len(kind)>:<kind><id>"."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


def _sha(kind: str, number: int) -> str:
    return hashlib.sha1(f"{kind}:{number}".encode(), usedforsecurity=False).hexdigest()


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
