"""A recorded run, read back from its trace: the run's own tool calls in order with their
answers, and its subagent calls. Replay asks it for answers; export writes it out.

Matching is by tool name and the canonical JSON of the arguments; identical calls are
answered in the order they were recorded. Calls a subagent made are the subagent's
business: a replay answers the subagent call itself from the recording.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from tandem_sdk.plan import PlanDiff, PlannedCall, canonical, diff_plans, in_plan, wrong_calls

from tandem.store import RunRecord


@dataclass(frozen=True)
class RecordedCall:
    tool: str
    arguments: dict[str, Any]
    ok: bool
    result: Any = None
    over_cap: int | None = None  # bytes of a result too large to keep
    error_type: str | None = None
    message: str | None = None
    retryable: bool = False

    @property
    def planned(self) -> PlannedCall:
        return PlannedCall(self.tool, self.arguments)

    def to_fixture(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"tool": self.tool, "arguments": self.arguments}
        if not self.ok:
            entry["error"] = {
                "type": self.error_type,
                "message": self.message,
                "retryable": self.retryable,
            }
        elif self.over_cap is not None:
            entry["result_over_cap"] = self.over_cap
        else:
            entry["result"] = self.result
        return entry


@dataclass(frozen=True)
class RecordedSubagent:
    request: dict[str, Any]
    text: str | None = None
    output: Any = None
    error: str | None = None

    def to_fixture(self) -> dict[str, Any]:
        if self.error is not None:
            return {"request": self.request, "error": self.error}
        return {"request": self.request, "text": self.text, "output": self.output}


def subagent_key(request: dict[str, Any]) -> str:
    return canonical(request)


@dataclass
class Recording:
    run: RunRecord
    calls: list[RecordedCall]  # the run's own, in order
    subagent_calls: list[RecordedSubagent]
    _queues: dict[tuple[str, str], deque[RecordedCall]] = field(default_factory=dict)
    _subagent_queues: dict[str, deque[RecordedSubagent]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        queues: dict[tuple[str, str], deque[RecordedCall]] = defaultdict(deque)
        for call in self.calls:
            queues[call.planned.key].append(call)
        self._queues = dict(queues)
        answers: dict[str, deque[RecordedSubagent]] = defaultdict(deque)
        for sub in self.subagent_calls:
            answers[subagent_key(sub.request)].append(sub)
        self._subagent_queues = dict(answers)

    @classmethod
    def from_run(cls, run: RunRecord) -> Recording:
        results = {e.data.get("call"): e.data for e in run.events if e.kind == "tool.result"}
        calls: list[RecordedCall] = []
        for event in run.events:
            if event.kind != "tool.call" or event.data.get("subagent"):
                continue
            outcome = results.get(event.seq)
            if outcome is None:  # the run ended in the middle of this call
                continue
            calls.append(_recorded(event.data, outcome))
        return cls(run, calls, _subagent_calls(run))

    @property
    def plan(self) -> list[PlannedCall]:
        return [call.planned for call in self.calls if in_plan(call.tool)]

    @property
    def wrong(self) -> list[int]:
        """Indexes into `plan` of the calls a person flagged or denied in an approval."""
        flagged = [int(i) for i in (self.run.flag or {}).get("calls", [])]
        planned = [call for call in self.calls if in_plan(call.tool)]
        return wrong_calls(flagged, [None if c.ok else c.error_type for c in planned])

    def diff(self, replayed: RunRecord) -> PlanDiff:
        """The replay's plan against this recording, by the one rule (`diff_plans`)."""
        return diff_plans(self.plan, attempted_plan(replayed), wrong=self.wrong)

    def take(self, tool: str, arguments: dict[str, Any]) -> RecordedCall | None:
        """The next recorded answer to this exact call, or None."""
        queue = self._queues.get((tool, canonical(arguments)))
        return queue.popleft() if queue else None

    def take_subagent(self, request: dict[str, Any]) -> RecordedSubagent | None:
        queue = self._subagent_queues.get(subagent_key(request))
        return queue.popleft() if queue else None


def _recorded(call: dict[str, Any], outcome: dict[str, Any]) -> RecordedCall:
    tool, arguments = str(call["tool"]), dict(call.get("arguments") or {})
    if not outcome.get("ok"):
        return RecordedCall(
            tool,
            arguments,
            ok=False,
            error_type=outcome.get("error_type"),
            message=outcome.get("message"),
            retryable=bool(outcome.get("retryable")),
        )
    if "result_over_cap" in outcome:
        return RecordedCall(tool, arguments, ok=True, over_cap=int(outcome["result_over_cap"]))
    return RecordedCall(tool, arguments, ok=True, result=outcome.get("result"))


def _subagent_calls(run: RunRecord) -> list[RecordedSubagent]:
    """Subagent calls, paired started -> finished by the subagent's id."""
    started: dict[str, dict[str, Any]] = {}
    found: list[RecordedSubagent] = []
    for event in run.events:
        child = event.data.get("subagent")
        if event.kind == "subagent.started" and child and "request" in event.data:
            started[child] = event.data["request"]
        elif event.kind == "subagent.finished" and child in started:
            request = started.pop(child)
            if event.data.get("ok"):
                found.append(
                    RecordedSubagent(request, event.data.get("text"), event.data.get("output"))
                )
            else:
                found.append(RecordedSubagent(request, error=str(event.data.get("error"))))
    return found


def attempted_plan(run: RunRecord) -> list[PlannedCall]:
    """Every call the run's coordinator made, answered or not: a replay's plan."""
    return [
        PlannedCall(str(e.data["tool"]), dict(e.data.get("arguments") or {}))
        for e in run.events
        if e.kind == "tool.call" and not e.data.get("subagent") and in_plan(str(e.data["tool"]))
    ]


def took_a_step(run: RunRecord) -> bool:
    """Whether the run's coordinator got anywhere: made a tool call or had a model answer.
    A run that failed before (no API key, a script that would not load) never ran."""
    return any(e.kind in ("tool.call", "model.response") for e in run.events)
