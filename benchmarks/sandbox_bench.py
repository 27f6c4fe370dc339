"""Cold start per isolation tier, p50/p99: what a script run costs before its first line.

For each tier a fresh host (embedded, as `tandem run` uses) runs a one-call script
COLD_STARTS times; each run is measured from its trace:
- start: run.started -> the script's first tool call reaching the host (sandbox set-up,
  interpreter and SDK start, connecting, GetRun, the call itself);
- total: run.started -> run.finished (also tearing the sandbox down and killing by uid).

Each tier is measured in a child process, so that the `process` tier of a root daemon can
be given a runtime its unprivileged uid may read (see reachable_runtime_command).
`make bench` calls main(); `python benchmarks/sandbox_bench.py --tier namespace` measures
one tier.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench import COLD_SCRIPT
from bench import PLUGIN as BENCH_PLUGIN

COLD_STARTS = 20
TIERS = ("process", "namespace")
# One plugin and one cold-start workflow for every benchmark.
SCRIPT, PLUGIN = COLD_SCRIPT, textwrap.dedent(BENCH_PLUGIN)


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1e3:7.1f} ms   p99 {p99 * 1e3:7.1f} ms"


def measure(tier: str, runs: int) -> dict[str, list[float]]:
    from tandem.cli.control_client import ControlClient
    from tandem.config import load_config
    from tandem.embedded import EmbeddedHost

    with tempfile.TemporaryDirectory(prefix="tandem-sandbox-bench-") as tmp:
        root = Path(tmp)
        (root / "plugins" / "bench").mkdir(parents=True)
        (root / "plugins" / "bench" / "plugin.yaml").write_text("name: bench\n")
        (root / "plugins" / "bench" / "plugin.py").write_text(PLUGIN)
        (root / "workflows" / "cold").mkdir(parents=True)
        (root / "workflows" / "cold" / "script.py").write_text(SCRIPT)
        (root / "workflows" / "cold" / "workflow.yaml").write_text(
            "coordinator: script\ncoordinator_script: script.py\ntools: [bench.echo]\n"
        )
        config = load_config(root, isolation=tier)
        starts: list[float] = []
        totals: list[float] = []
        with EmbeddedHost(config) as host, ControlClient(host.control_socket) as client:
            for n in range(runs + 1):
                run_id = client.trigger("cold", None, None)
                for _ in client.watch(run_id):
                    pass
                record = client.run(run_id)
                if record.status != "succeeded":
                    raise SystemExit(f"{tier}: run {record.status}: {record.error}")
                times = {e.kind: e.ts for e in record.events}
                first_call = next(e.ts for e in record.events if e.kind == "tool.call")
                if n:  # the first run warms the page cache and the plugin
                    starts.append(first_call - times["run.started"])
                    totals.append(times["run.finished"] - times["run.started"])
        return {"start": starts, "total": totals}


def main() -> None:
    from tandem.isolation.runtime_paths import reachable_runtime_command

    print(f"sandbox cold start, {COLD_STARTS} runs per tier (to the first tool call; whole run)")
    for tier in TIERS:
        prefix = reachable_runtime_command() if tier == "process" and os.geteuid() == 0 else []
        child = subprocess.run(
            [*prefix, sys.executable, __file__, "--tier", tier, "--json"],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            reason = (child.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"  {tier:<10} unavailable: {reason}")
            continue
        figures = json.loads(child.stdout)
        print(f"  {tier:<10} start {_percentiles(figures['start'])}")
        print(f"  {'':<10} total {_percentiles(figures['total'])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=TIERS)
    parser.add_argument("--runs", type=int, default=COLD_STARTS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.tier is None:
        main()
    elif args.json:
        print(json.dumps(measure(args.tier, args.runs)))
    else:
        figures = measure(args.tier, args.runs)
        print(f"{args.tier}: start {_percentiles(figures['start'])}")
        print(f"{args.tier}: total {_percentiles(figures['total'])}")
