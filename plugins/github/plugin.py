"""GitHub: the state of pull requests, read through GitHub's REST API with githubkit, and
opening one (`create_pull_request`, what `tandem rewrite --pr` calls).

Configuration, from the plugin's secrets:
- GITHUB_TOKEN: a token that can read the repositories (fine-grained: "Pull requests: read";
  classic: `repo` for private repositories); "Pull requests: write" to open one. Optional
  for reading: without one the plugin sends no Authorization header and GitHub answers for
  public repositories only, at 60 requests an hour per IP address; a private repository
  then looks missing (not_found).
- GITHUB_API_URL: the REST API's base URL, https://api.github.com by default; for GitHub
  Enterprise Server, https://HOST/api/v3.

A failure is a ToolError whose `type` callers can match on:
    bad_url          the arguments do not name one pull request (or one repository)
    not_found        GitHub does not know the pull request (or repository), or the token
                     cannot see it
    invalid          GitHub refused to open the pull request (422): one already exists for
                     the branch, the branch is not there, nothing to compare; GitHub's words
    bad_credentials  GitHub refused the token (401)
    rate_limited     a primary or secondary rate limit (retryable); the message says when
    github_error     any other answer from GitHub (retryable when GitHub failed, 5xx)
    unreachable      no answer from GITHUB_API_URL (retryable)

Requests pin API version 2022-11-28, GitHub's default and the one every supported GitHub
Enterprise Server release accepts (githubkit would send 2026-03-10, refused before 3.21);
the fields read here are the same in both.
"""

import os
import re
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from githubkit import GitHub, TokenAuthStrategy, UnauthAuthStrategy
from githubkit.exception import (
    GitHubException,
    PrimaryRateLimitExceeded,
    RateLimitExceeded,
    RequestFailed,
    RequestTimeout,
    SecondaryRateLimitExceeded,
)
from tandem_sdk import RunContext, tool
from tandem_sdk.errors import ToolError
from typing_extensions import TypedDict

if TYPE_CHECKING:
    from githubkit_schemas.latest.models import PullRequest

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
REQUEST_TIMEOUT_S = 10.0
EXPECTED = "https://github.com/OWNER/REPO/pull/NUMBER, or owner, repo and number"
UNSEEN_HINT = " (no GITHUB_TOKEN is set, and a private repository looks missing without one)"
_OWNER = r"[A-Za-z0-9][A-Za-z0-9-]{0,38}"
_REPO = r"[A-Za-z0-9._-]{1,100}"
# The web page of a pull request on github.com or an Enterprise host; anything after the
# number (/files, ?w=1, #discussion_r1) is ignored.
PULL_URL = re.compile(
    rf"https://[A-Za-z0-9.-]+(?::[0-9]+)?/(?P<owner>{_OWNER})/(?P<repo>{_REPO})"
    rf"/pull/(?P<number>[0-9]+)(?:[/?#]\S*)?"
)


class PullStatus(TypedDict):
    url: str
    owner: str
    repo: str
    number: int
    title: str
    state: Literal["open", "merged", "closed"]
    merged_at: str | None
    closed_at: str | None
    author: str


@tool(read_only=True)
def pr_status(
    url: str = "", owner: str = "", repo: str = "", number: int = 0, *, ctx: RunContext
) -> PullStatus:
    """The state of a GitHub pull request: "open", "merged", or "closed" (without merging).

    Also its title, author, and when it merged or closed. Name the pull request either by
    its URL or by owner, repo and number, not both.

    Args:
        url: the pull request's page, https://github.com/OWNER/REPO/pull/NUMBER (GitHub
            Enterprise hosts too; a trailing /files or #fragment is fine).
        owner: the account that owns the repository, when not giving url.
        repo: the repository's name, when not giving url.
        number: the pull request's number, when not giving url.
    """
    owner, repo, number = _target(url.strip(), owner.strip(), repo.strip(), number)
    pull = _fetch(owner, repo, number, ctx)
    base_owner = pull.base.repo.owner
    return PullStatus(
        url=pull.html_url,
        owner=base_owner.login if base_owner else owner,  # GitHub's spelling, after renames
        repo=pull.base.repo.name,
        number=pull.number,
        title=pull.title,
        state="merged" if pull.merged or pull.merged_at else pull.state,
        merged_at=_iso(pull.merged_at),
        closed_at=_iso(pull.closed_at),
        author=pull.user.login,
    )


def _target(url: str, owner: str, repo: str, number: int) -> tuple[str, str, int]:
    """(owner, repo, number) from exactly one of the two ways of naming a pull request."""
    parts = {"owner": owner, "repo": repo, "number": number}
    if url and any(parts.values()):
        raise _bad_url(f"both url and owner, repo or number given: expected {EXPECTED}, not both")
    if url:
        match = PULL_URL.fullmatch(url)
        if match is None or int(match["number"]) < 1:
            raise _bad_url(f"{url!r} is not a pull request's URL{_hint(url)}: expected {EXPECTED}")
        return match["owner"], match["repo"], int(match["number"])
    missing = [name for name, value in parts.items() if not value]
    if len(missing) == len(parts):
        raise _bad_url(f"no pull request given: expected {EXPECTED}")
    if missing:
        raise _bad_url(f"{' and '.join(missing)} missing: expected {EXPECTED}")
    if not re.fullmatch(_OWNER, owner) or not re.fullmatch(_REPO, repo) or number < 1:
        raise _bad_url(f"{owner}/{repo}#{number} cannot name a pull request: expected {EXPECTED}")
    return owner, repo, number


def _hint(url: str) -> str:
    if not url.startswith("https://"):
        return " (it must start with https://)"
    if re.search(r"/issues/[0-9]+", url):
        return " (it is an issue)"
    if "/pulls/" in url:
        return " (the page of a pull request is /pull/NUMBER, not /pulls/)"
    if re.search(r"/pull/(?![0-9]+(?:[/?#]|$))", url):
        return " (the number must be digits)"
    return ""


def _bad_url(message: str) -> ToolError:
    return ToolError(message, type="bad_url")


class PullOpened(TypedDict):
    url: str
    number: int
    state: Literal["open"]
    draft: bool
    head: str
    base: str


# What a dry run answers: shaped as the real answer, so a script reading it keeps working.
# (A static answer: head and base are there, empty, as a dry run's answer cannot echo them.)
DRY_RUN_PULL = {
    "dry_run": True,
    "url": "",
    "number": 0,
    "state": "open",
    "draft": False,
    "head": "",
    "base": "",
}


@tool(destructive=False, idempotent=False, open_world=True, dry_run_result=DRY_RUN_PULL)
def create_pull_request(
    owner: str,
    repo: str,
    title: str,
    head: str,
    base: str,
    body: str = "",
    draft: bool = False,
    *,
    ctx: RunContext,
) -> PullOpened:
    """Open a pull request that merges branch `head` into branch `base`.

    The head branch must already be pushed to the repository. GitHub allows one open pull
    request per head and base: a second is refused (error type "invalid").

    Args:
        owner: the account that owns the repository.
        repo: the repository's name.
        title: the pull request's title.
        head: the branch whose commits are proposed (in the same repository).
        base: the branch they would be merged into.
        body: the description, in GitHub-flavoured markdown.
        draft: open it as a draft.
    """
    if not re.fullmatch(_OWNER, owner) or not re.fullmatch(_REPO, repo):
        raise _bad_url(f"{owner}/{repo} cannot name a repository")
    what = f"repository {owner}/{repo}"
    try:
        response = _github().rest.pulls.create(
            owner,
            repo,
            title=title,
            head=head,
            base=base,
            body=body,
            draft=draft,
            headers={"X-GitHub-Api-Version": API_VERSION},
        )
        pull = response.parsed_data
    except GitHubException as error:
        raise _failure(error, what) from error
    except pydantic.ValidationError as error:
        raise _unexpected(error, what) from error
    return PullOpened(
        url=pull.html_url,
        number=pull.number,
        state="open",
        draft=bool(pull.draft),
        head=pull.head.ref,
        base=pull.base.ref,
    )


_client: GitHub[TokenAuthStrategy] | GitHub[UnauthAuthStrategy] | None = None
_client_lock = threading.Lock()


def _github() -> GitHub[TokenAuthStrategy] | GitHub[UnauthAuthStrategy]:
    """The process's one client, made on first use (tools run in a thread pool)."""
    global _client
    with _client_lock:
        if _client is None:
            token = os.environ.get("GITHUB_TOKEN", "").strip()
            _client = GitHub(
                TokenAuthStrategy(token) if token else UnauthAuthStrategy(),
                base_url=_api_url(),
                user_agent="tandem-github-plugin",
                timeout=REQUEST_TIMEOUT_S,
                http_cache=False,  # a status must be fresh: a merge shows at once
                auto_retry=False,  # githubkit would sleep out a rate limit; _fetch decides
            )
        return _client


def _api_url() -> str:
    return os.environ.get("GITHUB_API_URL", "").strip() or DEFAULT_API_URL


def _fetch(owner: str, repo: str, number: int, ctx: RunContext) -> "PullRequest":
    """GET the pull request. A secondary rate limit is waited out once when its retry-after
    fits in the time the caller still waits; every other failure is reported at once."""
    what = f"pull request {owner}/{repo}#{number}"
    waited = False
    while True:
        try:
            response = _github().rest.pulls.get(
                owner, repo, number, headers={"X-GitHub-Api-Version": API_VERSION}
            )
            return response.parsed_data
        except SecondaryRateLimitExceeded as error:
            wait, left = error.retry_after.total_seconds(), ctx.time_left()
            if waited or left is None or wait + REQUEST_TIMEOUT_S > left:
                raise _failure(error, what) from error
            waited = True
            time.sleep(wait)  # GitHub asks for this pause before the next request
        except GitHubException as error:
            raise _failure(error, what) from error
        except pydantic.ValidationError as error:
            raise _unexpected(error, what) from error


def _unexpected(error: pydantic.ValidationError, what: str) -> ToolError:
    """GitHub answered, but not with the pull request object githubkit parses."""
    return ToolError(
        f"GitHub's answer for {what} is not the pull request object expected: {error}",
        type="github_error",
    )


def _failure(error: GitHubException, what: str) -> ToolError:
    """The one place where githubkit's exceptions become this plugin's ToolErrors."""
    if isinstance(error, RateLimitExceeded):
        return ToolError(_rate_limit_message(error), type="rate_limited", retryable=True)
    if isinstance(error, RequestFailed):
        status = error.response.status_code
        said = _message(error)
        if status == 404:
            unseen = "" if os.environ.get("GITHUB_TOKEN") else UNSEEN_HINT
            return ToolError(
                f"{what} not found: GitHub answered 404 {said}{unseen}",
                type="not_found",
            )
        if status == 422:
            said = _validation(error)
            return ToolError(f"GitHub answered 422 for {what}: {said}", type="invalid")
        if status == 401:
            if not os.environ.get("GITHUB_TOKEN", "").strip():  # a write needs one
                said = f"{what} needs a token, and no GITHUB_TOKEN is set: 401 {said}"
                return ToolError(said, type="bad_credentials")
            return ToolError(
                f"GitHub refused the token in GITHUB_TOKEN: 401 {said}", type="bad_credentials"
            )
        return ToolError(
            f"GitHub answered {status} for {what}: {said}",
            type="github_error",
            retryable=status >= 500,
        )
    if isinstance(error, RequestTimeout):
        reason = f"no answer within {REQUEST_TIMEOUT_S:g} s"
    else:
        reason = str(getattr(error, "exc", error)) or type(error).__name__
    return ToolError(f"cannot reach {_api_url()}: {reason}", type="unreachable", retryable=True)


def _rate_limit_message(error: RateLimitExceeded) -> str:
    headers = error.response.headers
    wait = round(error.retry_after.total_seconds())
    said = f"GitHub said: {_message(error)}"
    if isinstance(error, PrimaryRateLimitExceeded) and "x-ratelimit-reset" in headers:
        reset = datetime.fromtimestamp(int(headers["x-ratelimit-reset"]), UTC)
        limit = headers.get("x-ratelimit-limit", "?")
        spent = f"GitHub's rate limit ({limit} an hour) is spent"
        return f"{spent} until {_iso(reset)}, in {wait} s. {said}"
    kind = "secondary rate limit" if isinstance(error, SecondaryRateLimitExceeded) else "rate limit"
    then = _iso(datetime.now(UTC) + error.retry_after)
    return f"GitHub's {kind} was hit: retry after {wait} s, at {then}. {said}"


def _validation(error: RequestFailed) -> str:
    """A 422's message with the reasons in its `errors` (GitHub puts the useful part there:
    "A pull request already exists for acme:branch.")."""
    try:
        reasons = [e.get("message") or _field_error(e) for e in error.response.json()["errors"]]
    except (ValueError, AttributeError, KeyError, TypeError):
        reasons = []
    said = _message(error)
    return f"{said}: {'; '.join(str(r) for r in reasons)}" if reasons else said


def _field_error(entry: dict[str, Any]) -> str:
    """An `errors` entry without a message: {"resource", "field", "code"}."""
    said = " ".join(str(entry[k]) for k in ("field", "code") if entry.get(k))
    if (entry.get("field"), entry.get("code")) == ("head", "invalid"):
        said += " (is the head branch pushed to the repository?)"
    return said


def _message(error: RequestFailed) -> str:
    """GitHub's own words: the `message` of its error body, else the HTTP reason."""
    try:
        said = error.response.json().get("message")
    except (ValueError, AttributeError):
        said = None
    return str(said or error.response.raw_response.reason_phrase)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
