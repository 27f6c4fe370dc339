"""A throwaway bench project, and a real `tandem serve` on it (as tests/conftest.py starts
one): the benchmarks measure the daemon an operator runs, in its own process."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from tandem.store import RunRecord
from tandem.testing.daemon import ServedDaemon

PLUGIN = '''
from tandem_sdk import tool

@tool(side_effects=False)
def echo(value: int) -> int:
    """Return the value.

    Args:
        value: any integer.
    """
    return value
'''

WARM_UP = 20  # a loop's first calls are dropped: connecting, first use


def loop_script(tool: str) -> str:
    """A script whose trigger {"calls": N} makes N calls of `tool` (an echo taking
    `value`), each timed inside the script."""
    return f"""
import time

def handler(trigger, tools, virtual_files, subagent):
    samples = []
    for i in range(trigger["calls"]):
        started = time.perf_counter()
        tools.{tool}(value=i)
        samples.append(time.perf_counter() - started)
    return samples
"""


# `loop`: the `bench` plugin's echo, each call timed inside the script.
LOOP_SCRIPT = loop_script("bench.echo")

# `cold`: one call, for what a run costs before its first line.
COLD_SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return tools.bench.echo(value=1)
"""


def make_project(root: Path) -> Path:
    """The `bench` plugin (echo) and the `loop` and `cold` workflows, under `root`."""
    plugin = root / "plugins" / "bench"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text("name: bench\n")
    (plugin / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    for name, script in (("loop", LOOP_SCRIPT), ("cold", COLD_SCRIPT)):
        folder = root / "workflows" / name
        folder.mkdir(parents=True)
        (folder / "script.py").write_text(script)
        (folder / "workflow.yaml").write_text(
            "coordinator: script\ncoordinator_script: script.py\ntools: [bench.echo]\n"
            "limits: {max_tool_calls: 100000, timeout_s: 600}\n"
        )
    return root


class Daemon(ServedDaemon):
    """`tandem serve` on `root`. `prefix` goes before the command (the process tier of a
    root daemon needs one, see sandbox_bench)."""

    def __init__(
        self,
        root: Path,
        *args: str,
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(root, *args, prefix=prefix or (), env=env, ready_within_s=60)

    def run(
        self,
        workflow: str,
        payload: object = None,
        coordinator: str | None = None,
        *,
        dry_run: bool = False,
    ) -> RunRecord:
        """Trigger a run, wait for its end; it must succeed."""
        return self.finish(self.client.trigger(workflow, payload, coordinator, dry_run=dry_run))

    def loop_samples(self, workflow: str, calls: int) -> list[float]:
        """A loop workflow's (loop_script) `calls` timings, after its WARM_UP calls."""
        output = self.run(workflow, {"calls": WARM_UP + calls}).output
        assert isinstance(output, list)
        return [float(s) for s in output[WARM_UP:]]

    def finish(self, run_id: str) -> RunRecord:
        for _ in self.client.watch(run_id):
            pass
        record = self.client.run(run_id)
        if record.status != "succeeded":
            raise SystemExit(f"{record.workflow} {record.status}: {record.error}")
        return record

    def close(self) -> None:
        try:
            super().close()
        except subprocess.TimeoutExpired:
            self.kill()


def first(record: RunRecord, kind: str) -> float:
    """The time of the run's first event of this kind."""
    return next(e.ts for e in record.events if e.kind == kind)


def last(record: RunRecord, kind: str) -> float:
    return max(e.ts for e in record.events if e.kind == kind)
