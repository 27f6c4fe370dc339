"""An accepted rewrite as a branch (`--branch NAME`) and a pull request (`--pr`).

`prepare` checks everything it can before the model is asked: the repository (see
`branch.open_repository`), and for `--pr` the remote to push to and the GitHub repository
(from the remote's URL, or `--repo OWNER/NAME`). `commit` writes what `--write` would,
in a scratch copy of the workflow's folder, and commits those files on the new branch.
`open_pull_request` pushes it and opens the pull request through the host: a run of the
built-in workflow `open_pull_request`, whose script calls `github.create_pull_request`,
so the call is traced, checked and listed like any other.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem.builtin import PR_WORKFLOW
from tandem.client import ControlClient
from tandem.watching import watch_run

from .branch import (
    Repository,
    commit_branch,
    github_hosts,
    github_repository,
    open_repository,
    push,
    push_remote,
    remote_url,
)
from .errors import BranchError
from .write import CANDIDATE, write_accepted

_OWNER_REPO = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]{0,38})/([A-Za-z0-9._-]{1,100})$")


@dataclass(frozen=True)
class Target:
    repository: Repository
    branch: str
    remote: str | None = None  # with --pr
    github: tuple[str, str] | None = None  # (owner, repo), with --pr


def prepare(
    folder: Path, branch: str, *, pr: bool, repo: str | None, state_dir: Path | None = None
) -> Target:
    repository = open_repository(folder, branch, state_dir)
    if not pr:
        return Target(repository, branch)
    remote = push_remote(repository)
    if repo is not None:
        match = _OWNER_REPO.match(repo)
        if match is None:
            raise BranchError(f"--repo {repo!r} is not OWNER/NAME")
        github = (match[1], match[2])
    else:
        url = remote_url(repository, remote)
        hosts = github_hosts(os.environ)
        found = github_repository(url, hosts)
        if found is None:
            raise BranchError(
                f"remote {remote} ({url}) is not a repository's URL on {', '.join(sorted(hosts))}"
                " (GitHub Enterprise: set GITHUB_SERVER_URL): name the repository with"
                " --repo OWNER/NAME"
            )
        github = found
    return Target(repository, branch, remote, github)


def commit(
    target: Target,
    folder: Path,
    script: str,
    fixtures: Iterable[dict[str, Any]],
    scratch_in: Path,
    message: str,
) -> tuple[str, list[str]]:
    """Commit the accepted script, yaml, fixtures and test on the new branch; (the commit,
    the files it wrote relative to the repository)."""
    scratch_in.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_in) as scratch:
        copy = Path(scratch) / folder.name
        shutil.copytree(
            folder, copy, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", CANDIDATE)
        )
        written = write_accepted(copy, script, fixtures)
        files: dict[Path, bytes | None] = {
            folder / path.relative_to(copy): path.read_bytes() for path in written
        }
    files[folder / CANDIDATE] = None  # never on the branch, if it was ever committed
    made = commit_branch(target.repository, target.branch, files, message)
    root = target.repository.root.resolve()
    shown = [p.resolve().relative_to(root).as_posix() for p, c in files.items() if c is not None]
    return made, sorted(shown)


def open_pull_request(
    client: ControlClient, target: Target, title: str, body: str, *, draft: bool
) -> dict[str, Any]:
    """Push the branch, then open the pull request through the host; what the tool answered
    (url, number, ...). A BranchError says why not."""
    assert target.remote is not None and target.github is not None, "prepare(pr=True) first"
    try:
        push(target.repository, target.remote, target.branch)
    except BranchError as error:
        said = f"the branch {target.branch} is committed, but not pushed: {error}"
        raise BranchError(said) from None
    owner, repo = target.github
    payload = {
        "owner": owner,
        "repo": repo,
        "title": title,
        "head": target.branch,
        "base": target.repository.base,
        "body": body,
        "draft": draft,
    }
    run_id = client.trigger(PR_WORKFLOW.name, payload, None, workflow_path=PR_WORKFLOW)
    watch_run(client, run_id)
    record = client.run(run_id)
    if record.status != "succeeded" or not isinstance(record.output, dict):
        raise BranchError(
            f"the branch {target.branch} was pushed to {target.remote}, but the pull request"
            f" was not opened (run {run_id}, {record.status}): {record.error}"
        )
    return {**record.output, "run": run_id}
