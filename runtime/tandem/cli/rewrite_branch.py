"""`tandem rewrite --branch NAME [--pr]`: the accepted rewrite committed on a new branch,
and with --pr pushed and opened as a pull request whose description holds the evidence.
A failure after the commit (the push, the pull request) is a RewriteError: the branch
stays, and the message says so."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandem.client import ControlClient
    from tandem.config import ProjectConfig
    from tandem.rewrite import Verdict
    from tandem.rewrite.ship import Target

LEDGER_RUNS = 5000  # as `tandem stats` counts by default


def ship(
    config: ProjectConfig,
    args: argparse.Namespace,
    client: ControlClient,
    folder: Path,
    script: str,
    fixtures: list[dict[str, Any]],
    verdicts: Sequence[Verdict],
    target: Target,
    result: dict[str, Any],
) -> None:
    from tandem.rewrite import pull_request
    from tandem.rewrite.ship import commit, open_pull_request

    out = sys.stderr if args.json else sys.stdout
    title = pull_request.title(folder.name)
    agreed = sum(1 for v in verdicts if v.agree)
    message = (
        f"{title}\n\n`tandem rewrite` wrote script.py and switched workflow.yaml to it; replayed"
        f" through it, {agreed} of {len(verdicts)} recorded runs agree, and ship as fixtures.\n"
    )
    scratch = config.state_dir / "rewrite" / "branch"
    made, files = commit(target, folder, script, fixtures, scratch, message)
    base, current = target.repository.base, target.repository.branch
    print(f"branch {target.branch}: commit {made} off {current}, {len(files)} files", file=out)
    if ahead := target.repository.ahead:
        print(f"  (it also holds {current}'s {ahead} commit(s) not on {base}'s upstream)", file=out)
    for path in files:
        print(f"  {path}", file=out)
    result.update(branch=target.branch, commit=made, base=base, written=files)
    if not args.pr:
        print(
            f"next: review it (git diff {base}...{target.branch}), push it (git push origin"
            f" {target.branch}) and open a pull request into {base}; --pr does both",
            file=out,
        )
        return
    ledger = client.ledger(folder.name, 0, 0, LEDGER_RUNS)
    refused = ledger.get("refusals", {}).get(folder.name, {})
    body = pull_request.description(
        folder, verdicts, ledger["groups"], files, refused, ahead=(current, target.repository.ahead)
    )
    opened = open_pull_request(client, target, title, body, draft=args.draft)
    owner, repo = target.github or ("", "")
    print(
        f"pull request #{opened.get('number')} {opened.get('url')}: {target.branch} into"
        f" {base} of {owner}/{repo} (pushed to {target.remote}; run {opened['run']})",
        file=out,
    )
    result["pull_request"] = opened
