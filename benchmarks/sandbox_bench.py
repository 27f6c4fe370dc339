"""`make bench` (part): script cold start per isolation tier, against a naive Python start.

One real `tandem serve` per tier, both up at once. Each round triggers PER_ROUND one-call
runs on each daemon and makes PER_ROUND naive starts of the venv's Python (importing grpc
and the SDK's client, spawn -> exit), interleaved. A run is measured from its trace:

- start: run.started -> the script's first tool call reaching the host (sandbox set-up,
  interpreter and SDK start, connecting, GetRun, the call itself);
- total: run.started -> run.finished (also tearing the sandbox down and killing by uid).

Figures are medians over rounds of each round's p50; start / naive is taken round by
round. `launch` is what the daemon's `process.started` event says about how the script's
process came to be (a fork server's "zygote", or "spawn"), where it says so.

The `process` tier of a root daemon runs scripts as an unprivileged uid, which must read
the runtime; where it cannot (a Python under /root) the daemon runs under
`reachable_runtime_command`, a mount namespace of its own in which it can.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from daemon import Daemon, first, make_project
from grpc_refs import naive_start
from measure import interleave, ms, p50, ratio
from tandem.isolation.runtime_paths import reachable_runtime_command

ROUNDS = 5
PER_ROUND = 4
TIERS = ("process", "namespace")


class Tier:
    def __init__(self, name: str, folder: Path) -> None:
        prefix = reachable_runtime_command() if name == "process" and os.geteuid() == 0 else []
        self.name = name
        self.daemon = Daemon(make_project(folder), "--isolation", name, prefix=prefix)
        self.launch: set[str] = set()

    def runs(self) -> tuple[float, float]:
        """PER_ROUND cold runs: the p50 of start, and of total."""
        starts, totals = [], []
        for _ in range(PER_ROUND):
            record = self.daemon.run("cold")
            started = first(record, "run.started")
            starts.append(first(record, "tool.call") - started)
            totals.append(first(record, "run.finished") - started)
            process = next(e for e in record.events if e.kind == "process.started")
            self.launch.add(str(process.data.get("launch", "not in the trace")))
        return p50(starts), p50(totals)


def main() -> None:
    print(f"script cold start per tier: {ROUNDS} interleaved rounds of {PER_ROUND} runs each")
    with tempfile.TemporaryDirectory(prefix="tandem-sandbox-bench-") as tmp:
        tiers = [Tier(name, Path(tmp) / name) for name in TIERS]
        try:
            for tier in tiers:
                tier.runs()  # warm the page cache and the plugin
            contenders: dict[str, Callable[[], tuple[float, float]]] = {
                tier.name: tier.runs for tier in tiers
            }
            contenders["naive"] = lambda: (p50([naive_start() for _ in range(PER_ROUND)]), 0.0)
            rounds = interleave(ROUNDS, contenders)
        finally:
            for tier in tiers:
                tier.daemon.close()
    naive = [start for start, _ in rounds["naive"]]
    print(f"  {'naive start: python -I -B, import grpc + SDK':<46}{ms(p50(naive))}")
    for tier in tiers:
        starts = [start for start, _ in rounds[tier.name]]
        totals = [total for _, total in rounds[tier.name]]
        print(
            f"  {tier.name + ': run.started -> first tool.call':<46}{ms(p50(starts))}"
            f"   {ratio(starts, naive):5.2f}x naive   launch: {', '.join(sorted(tier.launch))}"
        )
        print(
            f"  {tier.name + ': run.started -> run.finished':<46}{ms(p50(totals))}"
            f"   {ratio(totals, naive):5.2f}x naive"
        )


if __name__ == "__main__":
    main()
