"""What a rewrite is made from: the workflow's yaml, prompt and virtual files (read from
its folder), the tools in its scope with their schemas and annotations (asked of the
host), and a sample of its recorded live runs, each as the trigger, the calls with their
arguments and results, the output, and a person's flag; and its guards (guards.py), which
refuse the candidate's calls as they refused the model's.

Runs the current script escalated (handed to the model: coordinator `script+llm`) come
first in the sample and in the brief's list, and are always validated against: they are
the cases the next script has to cover.

The runs to validate against are the recorded live runs and MCP sessions that succeeded,
and every flagged one: a failed run's plan is a fragment, and a flagged run is a person's
judgement. Runs a person excluded (`tandem runs exclude`) are left out. An MCP session
(mode `mcp`: the workflow's tools called from an MCP client, `tandem mcp serve`) is a run
the person at the client coordinated; its trigger, which a replay hands the candidate,
names the client: `{"mcp_client": {"name", "version"}}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem_sdk._convert import annotations_of
from tandem_sdk._pb import control_pb2

from tandem.client import ControlClient
from tandem.escalation import ESCALATED
from tandem.store import RunRecord
from tandem.workflows import Workflow, load_workflow

# Each value shown to the model is cut to about this many characters: enough to show
# the shape of a tool's answer, not so much that a few runs fill the request.
RESULT_BUDGET = 4000
FILE_BUDGET = 20_000
MAX_LISTED = 10_000  # "every recorded run", as far as one listing goes


@dataclass(frozen=True)
class ToolDoc:
    name: str
    description: str
    annotations: str  # "read-only", or "side effects, not destructive, idempotent"
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class SampleRun:
    """One recorded run as its fixture shows it (see tandem.replay.fixtures)."""

    run: str
    coordinator: str
    status: str
    trigger: Any
    calls: list[dict[str, Any]]  # {"tool", "arguments", "result" | "error" | "result_over_cap"}
    output: Any
    flag_reason: str | None = None
    flagged_calls: frozenset[int] = frozenset()  # indexes into calls
    escalation: dict[str, Any] | None = None  # {"reason", "context"}: the script handed over

    @classmethod
    def from_fixture(cls, fixture: dict[str, Any]) -> SampleRun:
        flag = fixture.get("flagged") or None
        return cls(
            run=str(fixture["run"]),
            coordinator=str(fixture.get("coordinator", "")),
            status=str(fixture.get("status", "")),
            trigger=fixture.get("trigger"),
            calls=list(fixture.get("calls", [])),
            output=fixture.get("output"),
            flag_reason=str(flag.get("reason") or "no reason given") if flag else None,
            flagged_calls=frozenset(flag.get("calls", [])) if flag else frozenset(),
            escalation=fixture.get("escalated") or None,
        )


@dataclass(frozen=True)
class Material:
    workflow: str
    folder: Path
    yaml_text: str
    prompt_file: str
    prompt: str
    model: str
    tools: list[ToolDoc]
    files: dict[str, str]  # virtual path -> text (cut to FILE_BUDGET)
    samples: list[SampleRun]
    recorded: list[RunRecord] = field(default_factory=list)  # to validate against, newest first
    guards: str = ""  # guards.py, which the host asks before each call of the script too


def load(client: ControlClient, folder: Path) -> Workflow:
    """The workflow as its folder holds it now, checked as the host checks it (a
    WorkflowError names the file and the field)."""
    reply = client.stub.ListWorkflowTools(control_pb2.ListWorkflowToolsRequest())
    return load_workflow(folder, [t.name for t in reply.tools])


def gather(client: ControlClient, workflow: Workflow, sample: int) -> Material:
    recorded = recorded_runs(client, workflow.name)
    samples = [SampleRun.from_fixture(client.export(r.id)) for r in choose_sample(recorded, sample)]
    return Material(
        workflow=workflow.name,
        folder=workflow.folder,
        yaml_text=(workflow.folder / "workflow.yaml").read_text(encoding="utf-8"),
        prompt_file=workflow.spec.prompt or "",
        prompt=workflow.prompt_text or "",
        model=workflow.spec.model,
        tools=tools_in_scope(client, workflow.name),
        files={path: _file_text(content) for path, content in workflow.files.items()},
        samples=samples,
        recorded=recorded,
        guards=_file_text((workflow.guards_source or "").encode()),
    )


def tools_in_scope(client: ControlClient, workflow: str) -> list[ToolDoc]:
    reply = client.stub.ListWorkflowTools(control_pb2.ListWorkflowToolsRequest(workflow=workflow))
    return [
        ToolDoc(
            name=t.name,
            description=t.description,
            annotations=annotations_of(t).describe(),
            input_schema=json.loads(t.input_schema_json),
        )
        for t in reply.tools
    ]


# The recorded runs a rewrite learns from: production runs and MCP sessions.
RECORDED_MODES = ["live", "mcp"]


def recorded_runs(client: ControlClient, workflow: str) -> list[RunRecord]:
    """The live runs and MCP sessions that succeeded, and every flagged one that finished,
    none excluded; newest first."""
    kept = {"modes": RECORDED_MODES, "without_excluded": True}
    succeeded = client.runs(workflow, "succeeded", MAX_LISTED, **kept)
    flagged = [
        r
        for r in client.runs(workflow, "", MAX_LISTED, flagged=True, **kept)
        if r.status not in ("queued", "running", "waiting")
    ]
    by_id = {r.id: r for r in [*succeeded, *flagged]}
    return sorted(by_id.values(), key=lambda r: (r.created_at, r.id), reverse=True)


def escalated_first(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """The runs the script handed to the model, then the others, each in their order."""
    return [r for r in runs if r.coordinator == ESCALATED] + [
        r for r in runs if r.coordinator != ESCALATED
    ]


def choose_sample(runs: Sequence[RunRecord], n: int) -> list[RunRecord]:
    """At most n runs for the model to learn from: the escalated ones first, then the
    flagged ones, then one of each coordinator and kind of trigger, then the newest of the
    rest."""
    escalated = [r for r in runs if r.coordinator == ESCALATED]
    flagged = [r for r in runs if r.flag and r.coordinator != ESCALATED]
    others = [r for r in runs if not r.flag and r.coordinator != ESCALATED]
    chosen: list[RunRecord] = [*escalated, *flagged][:n]
    seen = {_shape(r) for r in chosen}
    for run in others:
        if len(chosen) < n and _shape(run) not in seen:
            chosen.append(run)
            seen.add(_shape(run))
    taken = {r.id for r in chosen}
    chosen += [r for r in others if r.id not in taken][: max(0, n - len(chosen))]
    return chosen


def choose_for_validation(runs: Sequence[RunRecord], last: int) -> list[RunRecord]:
    """Every recorded run, or the last N of them and every flagged or escalated one
    besides."""
    if not last:
        return list(runs)
    newest = list(runs[:last])
    return newest + [r for r in runs[last:] if r.flag or r.coordinator == ESCALATED]


def _shape(run: RunRecord) -> tuple[str, str]:
    trigger = run.trigger
    kind = str(trigger.get("trigger", "manual")) if isinstance(trigger, dict) else "manual"
    return run.coordinator, kind


def _file_text(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(content)} bytes)"
    if len(text) > FILE_BUDGET:
        return text[:FILE_BUDGET] + f"\n… [cut here: {len(text)} characters in all]"
    return text


def shrink(value: Any, budget: int = RESULT_BUDGET) -> str:
    """A value as one line of JSON of about `budget` characters at most: long lists keep
    their first items and say how many more there were, long strings their beginning, and
    objects nested too deep say only how many fields they have."""
    full = _dumps(value)
    if len(full) <= budget:
        return full
    for depth, items in ((8, 20), (6, 10), (4, 5), (3, 3), (2, 2), (1, 1)):
        text = _dumps(_cut(value, depth, items, max(60, budget // (4 * items))))
        if len(text) <= budget:
            return text
    return full[:budget] + f" … [cut here: {len(full)} characters in all]"


def _cut(value: Any, depth: int, items: int, chars: int) -> Any:
    if isinstance(value, list | dict) and depth == 0:
        return f"… {len(value)} {'items' if isinstance(value, list) else 'fields'}"
    again: Callable[[Any], Any] = lambda v: _cut(v, depth - 1, items, chars)  # noqa: E731
    if isinstance(value, list):
        kept = [again(v) for v in value[:items]]
        return kept + ([f"… {len(value) - items} more items"] if len(value) > items else [])
    if isinstance(value, dict):
        return {k: again(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) > chars:
        return value[:chars] + f"… [{len(value)} characters]"
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
