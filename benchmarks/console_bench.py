"""`make bench` (part): the console's runs page with 100,000 runs in the store, against the
same query over Control (`ListRuns`), in the same daemon and the same run.

The store is seeded in one transaction before a real `tandem serve --console` starts on it
(finished runs of three workflows, both coordinators, every mode). Three queries, each a
page of 50 newest first: the first page, one filtered by workflow and status, and a page
deep in the list (the console's keyset cursor; over Control, `until` at the same place).
Each round asks the page (GET over HTTP, signed in) and Control (gRPC over the unix
socket) once each, in alternating order; both times are round trips measured by the
client, so each includes its transport. Reported: p50 and p99 of each, and the median
over rounds of page / Control.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from daemon import Daemon
from measure import interleave, machine, ms, p50, p99, ratio
from tandem.config import load_config
from tandem.console import ConsoleAddress
from tandem.console.address import sign_in_url
from tandem.store import RunStore

RUNS = 100_000
ROUNDS = 200
WORKFLOWS = ("pr_merged", "triage", "nightly")
MODES = ("live", "live", "live", "shadow", "replay", "dry_run")
STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")
SCRIPT = "def handler(trigger, tools, virtual_files, subagent):\n    return 1\n"


def seed(database: Path, now: float) -> float:
    """RUNS finished runs, one a second up to `now`; returns the created_at of the run
    halfway down the list (where the deep page starts)."""
    RunStore(database).close()  # the schema, as the daemon makes it
    usage = json.dumps({"input_tokens": 1200, "output_tokens": 80, "model_calls": 2})
    rows = []
    for n in range(RUNS):
        created = now - (RUNS - n)
        rows.append(
            (
                uuid.uuid4().hex,
                WORKFLOWS[n % len(WORKFLOWS)],
                f"v{n // 20_000}",
                "llm" if n % 2 else "script",
                json.dumps({"n": n}),
                STATUSES[n % len(STATUSES)],
                json.dumps(n),
                created,
                created + 0.1,
                created + 0.9,
                usage,
                0,  # finished runs: nothing for start-up recovery
                MODES[n % len(MODES)],
            )
        )
    with sqlite3.connect(database) as db:  # one transaction
        db.executemany(
            "INSERT INTO runs (id, workflow, workflow_version, coordinator, trigger_json,"
            " status, output_json, created_at, started_at, finished_at, usage_json, host_pid,"
            " mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()
    return now - RUNS // 2


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tandem-console-bench-") as tmp:
        root = Path(tmp)
        folder = root / "workflows" / "pr_merged"
        folder.mkdir(parents=True)
        (folder / "script.py").write_text(SCRIPT)
        (folder / "workflow.yaml").write_text(
            "coordinator: script\ncoordinator_script: script.py\n"
        )
        config = load_config(root)
        started = time.perf_counter()
        deep = seed(config.database, time.time())
        seeded_s = time.perf_counter() - started
        with Daemon(root, "--console", "127.0.0.1:0", "--no-reload") as daemon:
            address = ConsoleAddress.read(config.state_dir)
            if address is None:
                raise SystemExit("the daemon serves no console")
            with httpx.Client(follow_redirects=True, timeout=60) as browser:
                signed_in = browser.get(sign_in_url(config.state_dir, address))
                if signed_in.status_code != 200 or "pr_merged" not in signed_in.text:
                    raise SystemExit(f"could not sign in: {signed_in.status_code}")
                base = f"http://{address.host}:{address.port}/runs"
                queries: list[tuple[str, dict[str, str], dict[str, Any]]] = [
                    ("first page", {}, {}),
                    (
                        "workflow + status",
                        {"workflow": "triage", "status": "failed"},
                        {"workflow": "triage", "status": "failed"},
                    ),
                    ("deep page (50,000 in)", {"after": f"{deep!r}_"}, {"until": deep}),
                ]
                report(browser, daemon, base, queries, seeded_s)


def report(
    browser: httpx.Client,
    daemon: Daemon,
    base: str,
    queries: list[tuple[str, dict[str, str], dict[str, Any]]],
    seeded_s: float,
) -> None:
    print(f"console runs page, {RUNS:,} runs in the store (seeded in {seeded_s:.1f} s)")
    print(f"  {machine()}; {ROUNDS} interleaved rounds, a page of 50 newest first")
    print(f"  {'query':<24}{'page p50':>12}{'p99':>12}{'Control p50':>14}{'p99':>12}  page/Control")
    for name, params, filters in queries:

        def page(params: dict[str, str] = params) -> float:
            return timed(lambda: _ok(browser.get(base, params=params)))

        def control(filters: dict[str, Any] = filters) -> float:
            return timed(lambda: daemon.client.runs(limit=51, **filters))

        times = interleave(ROUNDS, {"page": page, "control": control})
        a, b = times["page"], times["control"]
        print(
            f"  {name:<24}{ms(p50(a), 9)}{ms(p99(a), 9)}{ms(p50(b), 11)}{ms(p99(b), 9)}"
            f"  {ratio(a, b):6.2f}x"
        )


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _ok(response: httpx.Response) -> None:
    if response.status_code != 200 or "<table" not in response.text:
        raise SystemExit(f"the runs page failed: {response.status_code}")


if __name__ == "__main__":
    main()
