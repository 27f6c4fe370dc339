"""A recorded run as a fixture file: what `tandem runs export` writes and
`tandem_sdk.testing` replays offline. Version 1:

    {"fixture": 1, "run", "workflow", "workflow_version", "coordinator", "status",
     "trigger", "files": {path: text}, "calls": [{"tool", "arguments", "result" |
     "error": {"type", "message", "retryable"} | "result_over_cap": bytes}],
     "subagent_calls": [{"request", "text", "output"} | {"request", "error"}],
     "output", "flagged": null | {"reason", "calls": [0-based indexes into "calls"]},
     "escalated": null | {"reason", "context"}}

`escalated` is set when the run's script handed it to the model (coordinator `script+llm`):
then `calls` holds the script's calls and the model's after them.

`calls` is the run's tool plan: its own calls in order, without reads of its virtual files
(those are in `files`) and without the calls its subagents made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tandem_sdk.plan import in_plan

from tandem.escalation import EVENT as ESCALATION_EVENT
from tandem.store import RunRecord

from .recording import Recording

FIXTURE_VERSION = 1


def fixture_of(run: RunRecord, version: dict[str, Any] | None) -> dict[str, Any]:
    recording = Recording.from_run(run)
    return {
        "fixture": FIXTURE_VERSION,
        "run": run.id,
        "workflow": run.workflow,
        "workflow_version": run.workflow_version,
        "coordinator": run.coordinator,
        "status": run.status,
        "trigger": run.trigger,
        "files": (version or {}).get("files", {}),
        "calls": [c.to_fixture() for c in recording.calls if in_plan(c.tool)],
        "subagent_calls": [s.to_fixture() for s in recording.subagent_calls],
        "output": run.output,
        "flagged": run.flag,
        "escalated": escalation_of(run),
    }


def escalation_of(run: RunRecord) -> dict[str, Any] | None:
    """{"reason", "context"} of the run's hand-over to the model, from its trace."""
    for event in run.events:
        if event.kind == ESCALATION_EVENT:
            return {"reason": event.data.get("reason"), "context": event.data.get("context")}
    return None


def write_fixture(fixture: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{fixture['workflow']}-{fixture['run']}.json"
    # A recording holds what the tools answered: its owner's to share, not everyone's.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n")
    return path


# The body of a workflow's tests/test_script.py: every fixture beside it, replayed against
# its script.py (written by `tandem new` and `tandem rewrite --write`, after a docstring).
FIXTURE_TEST_BODY = """\
from pathlib import Path

import pytest
from tandem_sdk.testing import assert_replays

HERE = Path(__file__).parent
SCRIPT = HERE.parent / "script.py"
FIXTURES = sorted((HERE / "fixtures").glob("*.json"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_the_script_replays_recorded_runs(fixture: Path) -> None:
    assert_replays(SCRIPT, fixture)
"""
