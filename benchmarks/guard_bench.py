"""`make bench` (part): what a guard adds to a tool call.

One script run through a real `tandem serve` (the default `namespace` tier) calls two
identical echo tools in alternation, timing each call inside the script: `bench.echo`,
which no guard watches, and `bench.watched`, whose guard in guards.py returns None (it
lets every call through). So each guarded call pays the guard's round trip to the run's
guard process, and nothing else differs. Rounds are runs; each gives a p50 per tool, and
the figure is the median over rounds of guarded p50 / unguarded p50 (goal: under 1.5x).
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

from daemon import PLUGIN as ECHO_PLUGIN
from daemon import WARM_UP, Daemon
from measure import machine, ms, p50, ratio

ROUNDS = 5
CALLS = 400

PLUGIN = (
    ECHO_PLUGIN
    + '''
@tool(side_effects=False)
def watched(value: int) -> int:
    """Return the value (a guard watches this one).

    Args:
        value: any integer.
    """
    return value
'''
)

GUARDS = """
def bench_watched(call, history):
    return None
"""

SCRIPT = """
import time

def handler(trigger, tools, virtual_files, subagent):
    samples = {"echo": [], "watched": []}
    for i in range(trigger["calls"]):
        for name in ("echo", "watched") if i % 2 == 0 else ("watched", "echo"):
            started = time.perf_counter()
            getattr(tools.bench, name)(value=i)
            samples[name].append(time.perf_counter() - started)
    return samples
"""


def make_project(root: Path) -> Path:
    plugin = root / "plugins" / "bench"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text("name: bench\n")
    (plugin / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    folder = root / "workflows" / "guarded"
    folder.mkdir(parents=True)
    (folder / "script.py").write_text(SCRIPT)
    (folder / "guards.py").write_text(GUARDS)
    (folder / "workflow.yaml").write_text(
        "coordinator: script\ncoordinator_script: script.py\ntools: [bench.*]\n"
        "limits: {max_tool_calls: 100000, timeout_s: 600}\n"
    )
    return root


def main() -> None:
    print(f"machine: {machine()}")
    p50s: dict[str, list[float]] = {"echo": [], "watched": []}
    with (
        tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp,
        Daemon(make_project(Path(tmp) / "project")) as daemon,
    ):
        daemon.run("guarded", {"calls": WARM_UP})  # the plugin and the page cache
        for _ in range(ROUNDS):
            output = daemon.run("guarded", {"calls": WARM_UP + CALLS}).output
            for name, samples in output.items():
                p50s[name].append(p50(samples[WARM_UP:]))
    print(f"guard on a tool call: {ROUNDS} runs of {CALLS} calls of each tool, medians of runs")
    print(f"  {'tool call without a guard':<47}{ms(p50(p50s['echo']))}")
    print(f"  {'the same call with a guard that allows it':<47}{ms(p50(p50s['watched']))}")
    print(f"  {'guard/overhead':<47}{ratio(p50s['watched'], p50s['echo']):8.2f}x  (goal < 1.5x)")


if __name__ == "__main__":
    main()
