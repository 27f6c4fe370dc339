"""Tool plans and their diff: what a run called, against what a replay of it called.

A plan is the ordered list of a run's tool calls, each a tool name and its arguments.
Calls match on the tool and the canonical JSON of the arguments (keys sorted), so
`{"a": 1, "b": 2}` and `{"b": 2, "a": 1}` are the same call. Reads of the workflow's own
virtual files (`files.*`) are not part of a plan: they are inputs, not actions.

The diff says, entry by entry: `same`; `added` (only the replay made it); `missing`
(only the recording has it); `changed` (the same tool at the same place with other
arguments); `moved` (both made it, in another order). Plans *agree* when every entry is
`same`, or `moved` unless order is strict.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["same", "added", "missing", "changed", "moved"]
NOT_IN_PLANS = ("files.",)


def canonical(arguments: Any) -> str:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class PlannedCall:
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.tool, canonical(self.arguments)

    def __str__(self) -> str:
        args = ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.arguments.items()
        )
        return f"{self.tool}({args})"

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "arguments": self.arguments}


def in_plan(tool: str) -> bool:
    return not tool.startswith(NOT_IN_PLANS)


def plan_of(calls: Iterable[PlannedCall]) -> list[PlannedCall]:
    return [call for call in calls if in_plan(call.tool)]


@dataclass(frozen=True)
class DiffEntry:
    kind: Kind
    recorded: PlannedCall | None = None
    replayed: PlannedCall | None = None

    def __str__(self) -> str:
        mark = {"same": " ", "added": "+", "missing": "-", "changed": "~", "moved": "↕"}[self.kind]
        if self.kind == "changed":
            return f"{mark} {self.recorded}\n    now {self.replayed}"
        return f"{mark} {self.replayed or self.recorded}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "recorded": self.recorded.to_json() if self.recorded else None,
            "replayed": self.replayed.to_json() if self.replayed else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiffEntry:
        def call(side: Any) -> PlannedCall | None:
            return PlannedCall(side["tool"], dict(side["arguments"])) if side else None

        return cls(data["kind"], call(data.get("recorded")), call(data.get("replayed")))


@dataclass(frozen=True)
class PlanDiff:
    entries: list[DiffEntry]

    def count(self, kind: Kind) -> int:
        return sum(1 for entry in self.entries if entry.kind == kind)

    def agrees(self, *, strict_order: bool = False) -> bool:
        allowed = {"same"} if strict_order else {"same", "moved"}
        return all(entry.kind in allowed for entry in self.entries)

    def summary(self) -> str:
        kinds: tuple[Kind, ...] = ("same", "added", "missing", "changed", "moved")
        return ", ".join(f"{self.count(k)} {k}" for k in kinds if self.count(k))

    def lines(self) -> list[str]:
        return [str(entry) for entry in self.entries]

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self.entries]

    @classmethod
    def from_json(cls, entries: list[dict[str, Any]]) -> PlanDiff:
        return cls([DiffEntry.from_json(entry) for entry in entries])


def diff_plans(recorded: Sequence[PlannedCall], replayed: Sequence[PlannedCall]) -> PlanDiff:
    """Align two plans (difflib on the calls' keys) and name every difference: calls
    found on both sides out of line are `moved`; what remains of an unaligned stretch
    pairs up by tool as `changed`, and the rest is `missing` or `added`."""
    recorded, replayed = plan_of(recorded), plan_of(replayed)
    matcher = difflib.SequenceMatcher(
        a=[c.key for c in recorded], b=[c.key for c in replayed], autojunk=False
    )
    stretches = [(op, range(a0, a1), range(b0, b1)) for op, a0, a1, b0, b1 in matcher.get_opcodes()]
    # First pass: every unaligned recorded call finds its twin among the unaligned replayed.
    unaligned = [j for op, _, news in stretches if op != "equal" for j in news]
    twin_of: dict[int, int] = {}
    for op, olds, _ in stretches:
        if op == "equal":
            continue
        for i in olds:
            twin = next(
                (
                    j
                    for j in unaligned
                    if j not in twin_of.values() and replayed[j].key == recorded[i].key
                ),
                None,
            )
            if twin is not None:
                twin_of[i] = twin
    claimed = set(twin_of.values())
    entries: list[DiffEntry] = []
    for op, olds, news in stretches:
        if op == "equal":
            entries += [
                DiffEntry("same", recorded[i], replayed[j]) for i, j in zip(olds, news, strict=True)
            ]
            continue
        free = [j for j in news if j not in claimed]
        changed = _pair_by_likeness([i for i in olds if i not in twin_of], free, recorded, replayed)
        for i in olds:
            if i in twin_of:
                entries.append(DiffEntry("moved", recorded[i], replayed[twin_of[i]]))
            elif i in changed:
                entries.append(DiffEntry("changed", recorded[i], replayed[changed[i]]))
            else:
                entries.append(DiffEntry("missing", recorded=recorded[i]))
        paired = set(changed.values())
        entries += [DiffEntry("added", replayed=replayed[j]) for j in free if j not in paired]
    return PlanDiff(entries)


def _pair_by_likeness(
    olds: list[int],
    news: list[int],
    recorded: Sequence[PlannedCall],
    replayed: Sequence[PlannedCall],
) -> dict[int, int]:
    """Pair recorded and replayed calls of the same tool, those sharing most arguments
    first: the pairs are what `changed` reports."""

    def shared(i: int, j: int) -> int:
        a, b = recorded[i].arguments, replayed[j].arguments
        return sum(1 for k, v in a.items() if k in b and b[k] == v)

    candidates = [(i, j) for i in olds for j in news if recorded[i].tool == replayed[j].tool]
    candidates.sort(key=lambda pair: -shared(*pair))  # stable: plan order breaks ties
    pairs: dict[int, int] = {}
    for i, j in candidates:
        if i not in pairs and j not in pairs.values():
            pairs[i] = j
    return pairs


def repeated_flagged(
    plan: Sequence[PlannedCall], flagged: Iterable[int], attempted: Iterable[PlannedCall]
) -> list[PlannedCall]:
    """The calls of `plan` a person flagged (by index) that `attempted` made again. A flagged
    call that also stands unflagged in the plan counts as repeated only once the attempts
    of its unflagged twins are used up."""
    wrong = list(dict.fromkeys(flagged))
    made = Counter(call.key for call in attempted)
    made.subtract(call.key for i, call in enumerate(plan) if i not in wrong)
    repeated = []
    for index in wrong:
        if index < len(plan) and made[(call := plan[index]).key] > 0:
            made[call.key] -= 1
            repeated.append(call)
    return repeated
