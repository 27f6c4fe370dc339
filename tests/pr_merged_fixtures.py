"""The pr_merged example on its stand-ins, shared by the tests that drive it: the Slack,
GitHub and Messages API stand-ins and a real `tandem serve --http` pointed at them.

Test modules import it (a second conftest.py would shadow the top one's)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from conftest import REPO, Daemon, Project
from tandem.store import RunRecord
from tandem.testing import AnthropicStandIn
from tandem.testing.github_api import GitHubStandIn, pull_request_event
from tandem.testing.slack_api import SlackStandIn

SECRET = "pr-merged-test-secret"
ENG = "C0ENG00001"
SETTINGS = json.loads((REPO / "workflows/pr_merged/files/settings.json").read_text())
# What a sweep of the seeded #eng must do (workspace.py): merged -> :merged:, closed -> :x:.
SWEEP = {
    ("1764460920.000300", "merged"),  # links 101 and 104, both merged: one reaction
    ("1764460980.000400", "x"),  # 102 closed without merging
    ("1764461160.000700", "merged"),  # 103 open and 101 merged
}
# 105's message already has :merged:; 103 is open; 999 is unknown; #7 is an issue.
WEBHOOK_101 = {("1764460920.000300", "merged"), ("1764461160.000700", "merged")}


def webhook_trigger(number: int, delivery: str = "recorded") -> dict[str, Any]:
    """The trigger a signed delivery gives a run (see tandem.webhooks.intake)."""
    return {
        "trigger": "webhook",
        "path": "/hooks/github",
        "event": "pull_request",
        "delivery": delivery,
        "payload": pull_request_event(number, action="closed"),
    }


class Setup:
    """Stand-ins and a daemon serving a copy of workflows/pr_merged."""

    def __init__(self, root: Path, tandem_yaml: str = "", *, start: bool = True) -> None:
        self.slack = SlackStandIn().start()
        self.github = GitHubStandIn().start()
        self.model = AnthropicStandIn().start()
        self.project = Project(root)
        shutil.copytree(REPO / "workflows" / "pr_merged", root / "workflows" / "pr_merged")
        if tandem_yaml:
            (root / "tandem.yaml").write_text(tandem_yaml)
        if start:
            self.start()

    def start(self) -> None:
        """Start the daemon (after a test has changed the project, if it wanted to)."""
        env = {
            **self.slack.env,
            **self.github.env,
            **self.model.env,
            "GITHUB_WEBHOOK_SECRET": SECRET,
        }
        self.daemon = Daemon(self.project, "--http", "127.0.0.1:0", env=env)
        self.url = next(
            m.group(1)
            for line in self.daemon.log
            if (m := re.search(r"http listener (http://\S+)", line))
        )

    def added(self) -> set[tuple[str, str]]:
        return {(r.ts, r.name) for r in self.slack.reactions_added if r.channel == ENG}

    def run(
        self, payload: Any = None, coordinator: str | None = None, *, dry_run: bool = False
    ) -> RunRecord:
        run_id = self.daemon.client.trigger("pr_merged", payload, coordinator, dry_run=dry_run)
        return self.wait(run_id)

    def wait(self, run_id: str) -> RunRecord:
        for _ in self.daemon.client.watch(run_id):
            pass
        return self.daemon.client.run(run_id)

    def close(self) -> None:
        self.daemon.close()
        for stand_in in (self.slack, self.github, self.model):
            stand_in.stop()
