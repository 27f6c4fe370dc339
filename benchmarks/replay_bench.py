"""`make bench` (part): replaying 20 recorded pr_merged runs, against running them live.

Both go through the same embedded host, on the Slack and GitHub stand-ins, interleaved in
rounds so a noisy machine slows both alike. A live run calls the plugins (and through them
the stand-ins over HTTP); a replay answers every call from the recording and then diffs
the plans. Reported: wall time for 20 of each per round, medians, and replay/live.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tandem.client import ControlClient
from tandem.config import load_config
from tandem.embedded import EmbeddedHost
from tandem.replay import Recording, attempted_plan
from tandem.testing import GitHubStandIn, SlackStandIn
from tandem_sdk.plan import diff_plans

ROOT = Path(__file__).resolve().parent.parent
RUNS = 20
ROUNDS = 3


def finish(client: ControlClient, run_id: str) -> None:
    for _ in client.watch(run_id):
        pass


def live(client: ControlClient, slack: SlackStandIn) -> list[str]:
    ids = []
    for _ in range(RUNS):
        slack.reset()
        run_id = client.trigger("pr_merged", None, "script")
        finish(client, run_id)
        ids.append(run_id)
    return ids


def replay(client: ControlClient, recorded: list[str]) -> int:
    agreed = 0
    for run_id in recorded:
        replay_id = client.replay(run_id)
        finish(client, replay_id)
        diff = diff_plans(
            Recording.from_run(client.run(run_id)).plan, attempted_plan(client.run(replay_id))
        )
        agreed += diff.agrees()
    return agreed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tandem-replay-bench-") as tmp:
        project = Path(tmp) / "project"
        (project / "plugins").mkdir(parents=True)
        shutil.copytree(ROOT / "workflows" / "pr_merged", project / "workflows" / "pr_merged")
        with SlackStandIn() as slack, GitHubStandIn() as github:
            os.environ.update({**slack.env, **github.env})  # the plugins' secrets
            config = load_config(project)
            with EmbeddedHost(config) as host:
                client = ControlClient(host.control_socket)
                live_s, replay_s = [], []
                for _ in range(ROUNDS):
                    started = time.perf_counter()
                    recorded = live(client, slack)
                    live_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    agreed = replay(client, recorded)
                    replay_s.append(time.perf_counter() - started)
                    if agreed != RUNS:
                        sys.exit(f"replay disagreed on {RUNS - agreed} of {RUNS} runs")
                client.close()
    live_m, replay_m = statistics.median(live_s), statistics.median(replay_s)
    print(f"replay of {RUNS} recorded runs (+ plan diff), median of {ROUNDS} interleaved rounds")
    print(f"  live runs      {live_m:6.2f} s   ({', '.join(f'{s:.2f}' for s in live_s)})")
    print(f"  replays        {replay_m:6.2f} s   ({', '.join(f'{s:.2f}' for s in replay_s)})")
    print(f"  replay / live  {replay_m / live_m:6.2f}x")


if __name__ == "__main__":
    main()
