"""`tandem rewrite --branch NAME`: what an accepted rewrite writes, committed on a new
branch of the project's git repository, made off HEAD without a checkout. A temporary
index is read from HEAD's tree, the files are added to it as blobs, and the branch is
created at the commit `commit-tree` makes of it, only if no branch of that name exists
(update-ref against the all-zero id). The current branch, its index and the work tree
are never touched, so a reviewer's tree stays as it was.

`--pr` then pushes the branch where git pushes the current branch (its pushRemote, else
remote.pushDefault, its upstream's remote, `origin`) and reads the GitHub repository from
that remote's push URL. The pull request's base is the branch the current one tracks
(`branch.<name>.merge`), else the current branch's own name; commits of HEAD not on that
upstream ride along on the new branch, which `Repository.ahead` counts.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import BranchError

GIT_TIMEOUT_S = 60.0  # a push may be slow; nothing else here is
NO_COMMIT = "0" * 40
# The remote's URL as GitHub writes it: https://HOST/OWNER/REPO(.git), git@HOST:OWNER/REPO,
# ssh://git@HOST[:PORT]/OWNER/REPO.
_REMOTE = re.compile(
    r"^(?:(?:https?|ssh)://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d*)?/|[^@/:]+@(?P<scp>[^:/]+):)"
    r"(?P<owner>[A-Za-z0-9][A-Za-z0-9-]{0,38})/(?P<repo>[A-Za-z0-9._-]{1,100}?)(?:\.git)?/?$"
)
GITHUB = "github.com"


@dataclass(frozen=True)
class Repository:
    root: Path  # the work tree's top folder
    branch: str  # the current branch
    head: str  # the commit the new branch is made off
    base: str  # the pull request's base: the upstream's branch name, else `branch`
    ahead: int = 0  # HEAD's commits not on the upstream (0 when it has none)


def git(
    root: Path, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run git in `root`; its output, or a BranchError with what git said."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            env={**os.environ, **(env or {})},
            check=False,
        )
    except FileNotFoundError:
        raise BranchError("git is not installed (--branch commits with it)") from None
    except subprocess.TimeoutExpired:
        raise BranchError(f"git {args[0]} gave no answer within {GIT_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise BranchError(f"git {' '.join(args[:2])} failed: {said}")
    return done.stdout.decode(errors="replace").rstrip("\n")  # keeps `status`'s leading blank


def open_repository(folder: Path, branch: str, state_dir: Path | None = None) -> Repository:
    """The repository holding `folder`, checked for a rewrite onto new branch `branch`: a
    git work tree, on a branch with a commit, with nothing uncommitted (the rewrite was
    validated against the folder as it is, so HEAD must hold the same; tandem's own
    `state_dir` aside, when it is inside), and no branch `branch` yet."""
    try:
        top = git(folder, "rev-parse", "--show-toplevel")
    except BranchError:
        where = f"{folder} is not in a git repository"
        raise BranchError(f"{where}: --branch commits to one") from None
    root = Path(top)
    current = _try(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    if current is None:
        raise BranchError(
            f"{root} is on a detached HEAD: check out the branch the rewrite's branch should"
            " start from"
        )
    head = _try(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head is None:
        raise BranchError(f"{root} has no commit yet on {current}: commit the project first")
    changed = dirty_files(root, state_dir)
    if changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if changed[10:] else "")
        raise BranchError(
            f"the work tree of {root} has uncommitted changes: {shown}; commit or remove them"
            " first, so the branch holds the workflow the rewrite was validated against"
        )
    # `--branch` also expands @{-1} and takes refs/heads/x: only a plain name is one.
    if _try(root, "check-ref-format", "--branch", branch) != branch or branch.startswith("refs/"):
        raise BranchError(f"{branch!r} is not a valid branch name")
    if _try(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}") is not None:
        raise BranchError(f"a branch {branch!r} already exists in {root}: name a new one")
    return Repository(root, current, head, *_upstream(root, current))


def _upstream(root: Path, branch: str) -> tuple[str, int]:
    """(the upstream's branch name, HEAD's commits not on it); (`branch`, 0) without one."""
    merge = _try(root, "config", f"branch.{branch}.merge")
    if not merge:
        return branch, 0
    name = merge.removeprefix("refs/heads/")
    counted = _try(root, "rev-list", "--count", "@{upstream}..HEAD")
    return name, int(counted) if counted and counted.isdigit() else 0


def dirty_files(root: Path, leave_out: Path | None = None) -> list[str]:
    """Files changed, staged or untracked (not ignored), as `git status` names them; none
    under `leave_out`."""
    status = ["--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all"]
    spec = ["--", "."]
    inside = leave_out.resolve() if leave_out is not None else None
    if inside is not None and inside.is_relative_to(root.resolve()) and inside != root.resolve():
        spec.append(f":(exclude,top){inside.relative_to(root.resolve()).as_posix()}")
    listed = git(root, *status, *spec).split("\0")
    files, entries = [], iter(listed)
    for entry in entries:
        if entry:
            files.append(entry[3:])
            if entry[0] in "RC":  # a rename's or copy's source follows: the same change
                next(entries, None)
    return files


def commit_branch(
    repository: Repository, branch: str, files: Mapping[Path, bytes | None], message: str
) -> str:
    """Commit `files` (absolute paths in the work tree -> content; None removes the file)
    onto HEAD's tree as a new branch; the commit's id."""
    root = repository.root
    with tempfile.TemporaryDirectory(prefix="tandem-branch-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git(root, "read-tree", repository.head, env=index)
        for path, content in sorted(files.items()):
            where = path.resolve().relative_to(root.resolve()).as_posix()
            if content is None:
                git(root, "update-index", "--force-remove", "--", where, env=index)
                continue
            blob = git(root, "hash-object", "-w", "--stdin", stdin=content)
            git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{where}", env=index)
        tree = git(root, "write-tree", env=index)
    commit = git(root, "commit-tree", tree, "-p", repository.head, stdin=message.encode())
    git(root, "update-ref", f"refs/heads/{branch}", commit, NO_COMMIT)
    return commit


def push_remote(repository: Repository) -> str:
    """The remote git pushes the current branch to: its pushRemote, remote.pushDefault,
    its upstream's remote, else `origin`."""
    root, branch = repository.root, repository.branch
    remotes = git(root, "remote").split()
    for key in (f"branch.{branch}.pushRemote", "remote.pushDefault", f"branch.{branch}.remote"):
        if (named := _try(root, "config", key)) in remotes:
            return str(named)
    if "origin" in remotes:
        return "origin"
    raise BranchError(
        f"{repository.root} has no remote to push to ({repository.branch} has no upstream,"
        " and there is no origin): add one (`git remote add origin URL`), or leave out --pr"
        " and push the branch yourself"
    )


def push(repository: Repository, remote: str, branch: str) -> None:
    git(repository.root, "push", "--quiet", remote, f"refs/heads/{branch}:refs/heads/{branch}")


def github_hosts(env: Mapping[str, str]) -> frozenset[str]:
    """The hosts whose remotes are GitHub repositories: github.com, and the web host of a
    GitHub Enterprise Server named by GITHUB_SERVER_URL or GITHUB_API_URL (its API's host)."""
    hosts = {GITHUB}
    for name in ("GITHUB_SERVER_URL", "GITHUB_API_URL"):
        host = urlsplit(env.get(name, "").strip()).hostname
        if host and host != f"api.{GITHUB}":
            hosts.add(host.lower())
    return frozenset(hosts)


def github_repository(url: str, hosts: Collection[str] = (GITHUB,)) -> tuple[str, str] | None:
    """(owner, repo) from a remote's URL in one of GitHub's forms on one of `hosts`; None
    for another URL."""
    match = _REMOTE.match(url.strip())
    if match is None or (match["host"] or match["scp"]).lower() not in hosts:
        return None
    return match["owner"], match["repo"]


def remote_url(repository: Repository, remote: str) -> str:
    """Where a push to `remote` goes (its pushurl, when it has one)."""
    return git(repository.root, "remote", "get-url", "--push", remote)


def _try(root: Path, *args: str) -> str | None:
    try:
        return git(root, *args)
    except BranchError:
        return None
