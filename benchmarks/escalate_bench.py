"""`make bench` (part): an escalated run's hand-over, against a plain LLM run's start.

- hand-over: a script makes one call, then raises `Escalate`, stamping the time in its
  context; measured from that stamp to the run's first `model.request` (the moment the
  first model call is sent): the script's process ending, its sandbox cleared, the calls
  read back from the trace, the LLM coordinator connected and asking;
- reference: a run of an `llm` workflow with the same prompt and tools, from its
  `run.started` to its first `model.request` (the LLM coordinator's own start).

Both run on one daemon against the Messages API stand-in (answering at once), interleaved
in rounds; each round gives a median per path, and the figures are medians over rounds,
the ratio taken round by round.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from daemon import Daemon, first, make_project
from measure import interleave, machine, ms, p50, ratio
from tandem.testing import AnthropicStandIn, Reply

ROUNDS = 5
RUNS = 10  # per path and round
PROMPT = "Echo the value 1 with the bench tool, then answer done."
ESCALATING = """
import time

from tandem_sdk import Escalate

def handler(trigger, tools, virtual_files, subagent):
    tools.bench.echo(value=1)
    raise Escalate("bench", context={"raised_at": time.time()})
"""


def _add_workflows(root: Path) -> None:
    for name, script in (("handover", ESCALATING), ("direct", None)):
        folder = root / "workflows" / name
        folder.mkdir(parents=True)
        (folder / "prompt.md").write_text(PROMPT)
        spec = "prompt: prompt.md\ntools: [bench.echo]\n"
        if script is None:
            spec += "coordinator: llm\n"
        else:
            (folder / "script.py").write_text(script)
            spec += "coordinator: script\ncoordinator_script: script.py\n"
        (folder / "workflow.yaml").write_text(spec)


def _handover_s(daemon: Daemon, api: AnthropicStandIn) -> float:
    api.add(Reply.text("done"))
    record = daemon.run("handover")
    escalated = next(e for e in record.events if e.kind == "run.escalated")
    return first(record, "model.request") - float(escalated.data["context"]["raised_at"])


def _start_s(daemon: Daemon, api: AnthropicStandIn) -> float:
    api.add(Reply.text("done"))
    record = daemon.run("direct")
    return first(record, "model.request") - first(record, "run.started")


def main() -> None:
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        root = make_project(Path(tmp) / "project")
        _add_workflows(root)
        with AnthropicStandIn() as api, Daemon(root, env=api.env) as daemon:
            _handover_s(daemon, api)  # warm: the zygote, the plugin, the API client
            _start_s(daemon, api)
            rounds = interleave(
                ROUNDS,
                {
                    "handover": lambda: p50([_handover_s(daemon, api) for _ in range(RUNS)]),
                    "llm_start": lambda: p50([_start_s(daemon, api) for _ in range(RUNS)]),
                },
            )
    handover, start = rounds["handover"], rounds["llm_start"]
    print(f"escalation hand-over, median of {ROUNDS} interleaved rounds of {RUNS} runs each")
    print(f"  script's raise -> first model request   {ms(p50(handover))}")
    print(f"  llm run's start -> first model request  {ms(p50(start))}  (reference)")
    print(f"  hand-over / llm start                   {ratio(handover, start):8.2f}x")


if __name__ == "__main__":
    main()
