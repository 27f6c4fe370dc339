"""A local stand-in for the GitHub REST API, for tests and the demo that must not touch the
network.

It serves, on a free 127.0.0.1 port, the endpoints the `github` plugin uses, with GitHub's
wire format: `GET /repos/{owner}/{repo}/pulls/{pull_number}` answers the complete pull
request object (the shape githubkit's models require, built by `tandem.testing.github_objects`),
for the seeded repository of `tandem.testing.workspace`; `POST /repos/{owner}/{repo}/pulls`
opens one (201 with the object and a Location header; GitHub's 422 when the fields are
missing, the head is no branch of the repository (`push_branch` makes one), or an open pull
request from the same head into the same base exists, 404 for another repository; 401
without a token), as the token's user, `tandem-bot`, counted in the rate limits as a read
is. It checks credentials as GitHub does (`Authorization: Bearer <token>` or `token
<token>`; none is allowed for reads, with the unauthenticated rate limit), answers GitHub's
error bodies, and puts GitHub's headers on every response (`x-github-request-id`,
`x-ratelimit-*`, `x-github-api-version-selected`). Knobs make it
misbehave the way GitHub does (a spent primary rate limit, secondary rate limits, a revoked
token) and change a pull request (`set_pull`: merge, close, reopen).

    with GitHubStandIn() as github:
        client = githubkit.GitHub(github.token, base_url=github.base_url, http_cache=False)
        client.rest.pulls.get("acme", "widgets", 101).parsed_data.merged   # True
        github.exhaust_rate_limit(reset_in_s=600)   # the next calls get 403, remaining 0

Every request is recorded in `calls`; `problems` lists what the stand-in could not answer as
GitHub would (an endpoint it does not implement, a request without User-Agent), so a test
can assert it is empty. The API versions follow GitHub's: `2022-11-28` (the default) and
`2026-03-10`, which drops `merge_commit_sha`, `assignee` and `has_downloads` from the objects
and `rate` from `GET /rate_limit`; any other `X-GitHub-Api-Version` is a 400.

`pull_request_json` and `pull_request_event` are re-exported from `tandem.testing.github_objects`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tandem.testing.github_objects import (
    API,
    JSON,
    VERSIONS,
    PullState,
    event_body,
    pull_object,
    pull_request_event,
    pull_request_json,
    reviewer,
    user_id,
)
from tandem.testing.http_server import ServedApp, ServedStandIn
from tandem.testing.workspace import BOT, OWNER, PULLS, REPO, WEB, SeedPull

__all__ = [
    "API",
    "AUTHENTICATED_LIMIT",
    "DEFAULT_TOKEN",
    "DOCS",
    "JSON",
    "PULL_DOCS",
    "RATE_DOCS",
    "UNAUTHENTICATED_LIMIT",
    "VERSIONS",
    "VERSION_DOCS",
    "GitHubStandIn",
    "PullState",
    "RecordedCall",
    "pull_request_event",
    "pull_request_json",
]

DEFAULT_TOKEN = "ghp_" + "tandemGitHubStandIn".ljust(36, "0")  # a fake token for a fake API
AUTHENTICATED_LIMIT, UNAUTHENTICATED_LIMIT = 5000, 60
DOCS = "https://docs.github.com/rest"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
VERSION_DOCS = "https://docs.github.com/rest/overview/api-versions"
PULL_DOCS = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request"
CREATE_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"


@dataclass(frozen=True)
class RecordedCall:
    method: str
    path: str
    token: str | None  # the token presented, or None for an unauthenticated request
    api_version: str | None  # the X-GitHub-Api-Version sent
    status: int
    body: JSON | None = None  # the JSON the request carried (POST)


@dataclass
class _Bucket:
    limit: int
    used: int = 0
    reset: int = 0

    def refresh(self, now: float) -> None:
        if now >= self.reset:
            self.used, self.reset = 0, math.ceil(now) + 3600


class GitHubStandIn(ServedStandIn):
    """GitHub's REST API for the seeded workspace, on a free loopback port."""

    def __init__(
        self, *, token: str = DEFAULT_TOKEN, web: str = WEB, path_prefix: str = ""
    ) -> None:
        """`web` is the host of `html_url`s; `path_prefix` serves the API under a path, as
        GitHub Enterprise Server does under `/api/v3`."""
        self.token = token
        self.web = web
        self.path_prefix = path_prefix.rstrip("/")
        self.calls: list[RecordedCall] = []
        self.problems: list[str] = []
        self._pulls = {seed.number: PullState.seeded(seed) for seed in PULLS}
        self._buckets: dict[str, _Bucket] = {}
        self._exhausted_until = 0.0
        self._secondary: tuple[int, int, int] = (0, 0, 403)  # (times left, retry-after, status)
        self._revoked = False
        # The repository's branches: a pull request's head must be one (`push_branch`).
        self.branches = {"main", *(seed.branch for seed in PULLS)}
        self._lock = threading.Lock()
        route = Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PATCH", "PUT"])
        self._served = ServedApp(Starlette(routes=[route]), "github-standin")

    # -- what tests use --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The value for GITHUB_API_URL (and githubkit's `base_url`)."""
        return self._served.base_url + self.path_prefix

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a daemon's `github` plugin here."""
        return {"GITHUB_API_URL": self.base_url, "GITHUB_TOKEN": self.token}

    def pull(self, number: int) -> PullState:
        """A pull request as the stand-in knows it now (after `set_pull`)."""
        with self._lock:
            return self._pulls[number]

    def set_pull(
        self, number: int, *, state: str | None = None, merged: bool | None = None
    ) -> None:
        """Change a pull request: `merged=True` merges it now, `state="closed"` closes it
        without merging, `state="open"` reopens it."""
        with self._lock:
            pull = self._pulls[number]
            now = datetime.now(UTC).replace(microsecond=0)
            if merged:
                if state == "open":
                    raise ValueError("a merged pull request is closed")
                merger = reviewer(pull.seed.author)
                pull = replace(pull, state="closed", merged=True, closed_at=now, merged_by=merger)
            elif state is not None:
                if state not in ("open", "closed") or (pull.merged and state == "open"):
                    raise ValueError(f"cannot set pull request #{number} to {state!r}")
                pull = replace(pull, state=state, closed_at=now if state == "closed" else None)
            self._pulls[number] = pull

    def exhaust_rate_limit(self, reset_in_s: float = 3600.0) -> None:
        """Spend the primary rate limit: calls get GitHub's 403 (`x-ratelimit-remaining: 0`)
        until `reset_in_s` from now."""
        with self._lock:
            self._exhausted_until = time.time() + reset_in_s

    def secondary_limit(self, times: int = 1, retry_after: int = 60, status: int = 403) -> None:
        """Answer the next `times` calls with a secondary rate limit: `status` (GitHub sends
        403 or 429) with `retry-after` seconds and primary quota left."""
        with self._lock:
            self._secondary = (times, retry_after, status)

    def push_branch(self, name: str) -> None:
        """The branch `name` now exists in the repository, as after a `git push`."""
        with self._lock:
            self.branches.add(name)

    def revoke_token(self) -> None:
        """From now on the token is unknown to GitHub: 401 Bad credentials."""
        with self._lock:
            self._revoked = True

    def pull_request_event(self, number: int, action: str = "closed") -> JSON:
        """A `pull_request` webhook delivery body for a pull request as it is now."""
        return event_body(self.pull(number), action, self.base_url, self.web)

    # -- serving ---------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        sent = await request.body()
        status, body, headers = self.handle(
            request.method, request.url.path, request.headers, _json_or_none(sent)
        )
        return Response(json.dumps(body), status, headers)  # headers carry the content-type

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], sent: JSON | None = None
    ) -> tuple[int, JSON, dict[str, str]]:
        """Answer one request as GitHub would: (status, JSON body, headers). `headers` has
        lower-case names; `sent` is the request's JSON body."""
        version = headers.get("x-github-api-version")
        token, accepted = self._credentials(headers.get("authorization"))
        with self._lock:
            bucket = self._bucket(token if accepted else None, time.time())
            status, body, extra = self._answer(method, path, headers, bucket, token, accepted, sent)
            self.calls.append(RecordedCall(method, path, token, version, status, sent))
        return (
            status,
            body,
            {
                "content-type": "application/json; charset=utf-8",
                "x-github-media-type": "github.v3; format=json",
                "x-github-request-id": _request_id(),
                **({"x-github-api-version-selected": version} if version in VERSIONS else {}),
                **_rate_headers(bucket),
                **extra,
            },
        )

    def _answer(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        bucket: _Bucket,
        token: str | None,
        accepted: bool,
        sent: JSON | None = None,
    ) -> tuple[int, JSON, dict[str, str]]:
        if not accepted:
            return 401, _error("Bad credentials", DOCS, 401), {}
        if "user-agent" not in headers:
            self.problems.append(f"{method} {path}: no User-Agent header, which GitHub refuses")
            message = "Request forbidden by administrative rules. Please make sure your request"
            return 403, _error(f"{message} has a User-Agent header", DOCS, 403), {}
        version = headers.get("x-github-api-version")
        if version is not None and version not in VERSIONS:
            return 400, _error(_unsupported(version), VERSION_DOCS, 400), {}
        served = path[len(self.path_prefix) :] if path.startswith(self.path_prefix + "/") else ""
        route = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls/([^/]+)", served)
        if method == "GET" and served == "/rate_limit":  # costs no primary quota
            return 200, _rate_limit_body(bucket, version), {}
        create = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls", served)
        opening = route is None and create is not None and method == "POST"
        if not opening and (route is None or method != "GET"):
            self.problems.append(f"{method} {path}: not implemented by the stand-in")
            return 404, _error("Not Found", DOCS, 404), {}
        if opening and token is None:  # reading is open to anyone, writing is not
            return 401, _error("Requires authentication", DOCS, 401), {}
        if (limited := self._limited(bucket, token)) is not None:
            return limited
        if create is not None and opening:
            return self._open(create[1], create[2], sent or {}, version)
        assert route is not None
        owner, repo, number = route.groups()
        pull = self._pulls.get(int(number)) if number.isdigit() else None
        if (owner.lower(), repo.lower()) != (OWNER, REPO) or pull is None:
            return 404, _error("Not Found", PULL_DOCS, 404), {}
        body = pull_object(pull, self.base_url, self.web, version or VERSIONS[0])
        digest = hashlib.sha256(json.dumps(body).encode()).hexdigest()
        return (
            200,
            body,
            {
                "cache-control": f"{'private' if token else 'public'}, max-age=60, s-maxage=60",
                "etag": f'W/"{digest}"',
                "vary": "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding",
            },
        )

    def _limited(
        self, bucket: _Bucket, token: str | None
    ) -> tuple[int, JSON, dict[str, str]] | None:
        """A call counted against the primary rate limit; GitHub's answer when a primary or
        secondary limit refuses it (the lock is held)."""
        if bucket.used >= bucket.limit:
            return 403, _error(_primary_limit_message(token), RATE_DOCS, 403), {}
        bucket.used += 1
        times, retry_after, status = self._secondary
        if times > 0:
            self._secondary = (times - 1, retry_after, status)
            docs = RATE_DOCS + "#about-secondary-rate-limits"
            body = _error(_secondary_limit_message(), docs, status)
            return status, body, {"retry-after": str(retry_after)}
        return None

    def _open(
        self, owner: str, repo: str, sent: JSON, version: str | None
    ) -> tuple[int, JSON, dict[str, str]]:
        """POST /repos/{owner}/{repo}/pulls, as GitHub answers it (the lock is held)."""
        if (owner.lower(), repo.lower()) != (OWNER, REPO):
            return 404, _error("Not Found", CREATE_DOCS, 404), {}
        missing = [f for f in ("head", "base", "title") if not isinstance(sent.get(f), str)]
        if missing:
            errors = [
                {"resource": "PullRequest", "field": f, "code": "missing_field"} for f in missing
            ]
            return 422, _validation_failed(errors), {}
        head, base = sent["head"].removeprefix(f"{OWNER}:"), sent["base"]
        if head not in self.branches:  # GitHub's answer for a head that was never pushed
            invalid = {"resource": "PullRequest", "field": "head", "code": "invalid"}
            return 422, _validation_failed([invalid]), {}
        if any(
            p.seed.branch == head and p.base == base and p.state == "open"
            for p in self._pulls.values()
        ):
            message = f"A pull request already exists for {OWNER}:{head}."
            return (
                422,
                _validation_failed(
                    [{"resource": "PullRequest", "code": "custom", "message": message}]
                ),
                {},
            )
        number = max(self._pulls) + 1
        seed = SeedPull(number, sent["title"], "open", False, BOT.github_login, head)
        created = PullState.seeded(seed)
        pull = replace(
            created,
            created_at=datetime.now(UTC).replace(microsecond=0),
            body=sent.get("body") if isinstance(sent.get("body"), str) else None,
            base=base,
            draft=sent.get("draft") is True,
        )
        self._pulls[number] = pull
        body = pull_object(pull, self.base_url, self.web, version or VERSIONS[0])
        return 201, body, {"location": body["url"]}

    def _credentials(self, header: str | None) -> tuple[str | None, bool]:
        """(the token presented, whether GitHub accepts it); no header is unauthenticated."""
        if header is None:
            return None, True
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return token or scheme, False
        return token.strip(), token.strip() == self.token and not self._revoked

    def _bucket(self, token: str | None, now: float) -> _Bucket:
        """The primary rate limit the request counts against: the token's, or the caller's
        address's when unauthenticated."""
        key = "token" if token else "address"
        if key not in self._buckets:
            limit = AUTHENTICATED_LIMIT if token else UNAUTHENTICATED_LIMIT
            self._buckets[key] = _Bucket(limit)
        bucket = self._buckets[key]
        bucket.refresh(now)
        if now < self._exhausted_until:
            bucket.used, bucket.reset = bucket.limit, math.ceil(self._exhausted_until)
        return bucket


# -- GitHub's rate limits and errors -------------------------------------------------------


def _rate_limit_body(bucket: _Bucket, version: str | None) -> JSON:
    core = _rate(bucket)
    # fmt: off
    body: JSON = {
        "resources": {
            "core": core,
            "search": {"limit": 30, "remaining": 30, "reset": bucket.reset, "used": 0,
                       "resource": "search"},
            "graphql": {"limit": 5000, "remaining": 5000, "reset": bucket.reset, "used": 0,
                        "resource": "graphql"},
        }
    }
    # fmt: on
    if version in (None, VERSIONS[0]):  # 2026-03-10 removed the deprecated copy
        body["rate"] = core
    return body


def _rate(bucket: _Bucket) -> JSON:
    return {
        "limit": bucket.limit,
        "remaining": max(bucket.limit - bucket.used, 0),
        "reset": bucket.reset,
        "used": bucket.used,
        "resource": "core",
    }


def _rate_headers(bucket: _Bucket) -> dict[str, str]:
    return {f"x-ratelimit-{name}": str(value) for name, value in _rate(bucket).items()}


def _unsupported(version: str) -> str:
    supported = ", ".join(f'"{v}"' for v in VERSIONS)
    return (
        f'The version you specified in the "X-GitHub-Api-Version" request header, "{version}", '
        f"is not a supported version. The following versions are currently supported: "
        f"{supported}."
    )


def _primary_limit_message(token: str | None) -> str:
    if token:
        return f"API rate limit exceeded for user ID {user_id(BOT.github_login)}."
    return (
        "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated "
        "requests get a higher rate limit. Check out the documentation for more details.)"
    )


def _secondary_limit_message() -> str:
    return (
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
        "again. If you reach out to GitHub Support for help, please include the request ID "
        f"{_request_id()}."
    )


def _error(message: str, documentation_url: str, status: int) -> JSON:
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def _validation_failed(errors: list[JSON]) -> JSON:
    return {**_error("Validation Failed", CREATE_DOCS, 422), "errors": errors}


def _json_or_none(sent: bytes) -> JSON | None:
    try:
        value = json.loads(sent) if sent else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _request_id() -> str:
    parts = (4, 6, 7, 7, 8)
    return ":".join(f"{random.getrandbits(4 * n):0{n}X}" for n in parts)
