"""Tool plans and their diff: what a run called, against what a replay of it called.

A plan is the ordered list of a run's tool calls, each a tool name and its arguments.
Calls match on the tool and the canonical JSON of the arguments (keys sorted), so
`{"a": 1, "b": 2}` and `{"b": 2, "a": 1}` are the same call. Reads of the workflow's own
virtual files (`files.*`) are not part of a plan: they are inputs, not actions.

The diff says, entry by entry: `same`; `added` (only the replay made it); `missing`
(only the recording has it); `changed` (the same tool at the same place with other
arguments); `moved` (both made it, in another order); and for the recorded calls that were
wrong (a person flagged them, or denied them in an approval, or a guard refused them):
`flagged` (not made again) or `repeated` (made again). Plans *agree* when every entry is
`same` or `flagged`, or `moved` unless order is strict. This is the one rule of agreement:
`tandem replay`, shadows, `tandem rewrite`, `assert_replays` and the ledger all judge by
`diff_plans`.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["same", "added", "missing", "changed", "moved", "flagged", "repeated"]
KINDS: tuple[Kind, ...] = ("same", "added", "missing", "changed", "moved", "flagged", "repeated")
NOT_IN_PLANS = ("files.",)
DENIED = "denied"  # the error type of a call a person denied in an approval
REFUSED = "guard_refused"  # the error type of a call a guard refused (GuardRefused.TYPE)
_MARKS = {"same": " ", "added": "+", "missing": "-", "changed": "~", "moved": "↕"}
_MARKS |= {"flagged": "·", "repeated": "!"}


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
        mark = _MARKS[self.kind]
        if self.kind == "changed":
            return f"{mark} {self.recorded}\n    now {self.replayed}"
        if self.kind == "flagged":
            return f"{mark} {self.recorded}  (flagged call, not repeated)"
        if self.kind == "repeated":
            return f"{mark} {self.recorded}  (flagged call, made again)"
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
        allowed = {"same", "flagged"} if strict_order else {"same", "flagged", "moved"}
        return all(entry.kind in allowed for entry in self.entries)

    @property
    def repeated(self) -> list[PlannedCall]:
        """The wrong (flagged or denied) calls the replay made again."""
        return [e.recorded for e in self.entries if e.kind == "repeated" and e.recorded]

    def summary(self) -> str:
        return ", ".join(f"{self.count(k)} {k}" for k in KINDS if self.count(k))

    def lines(self) -> list[str]:
        return [str(entry) for entry in self.entries]

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self.entries]

    @classmethod
    def from_json(cls, entries: list[dict[str, Any]]) -> PlanDiff:
        return cls([DiffEntry.from_json(entry) for entry in entries])


def wrong_calls(flagged: Iterable[int], error_types: Sequence[str | None]) -> list[int]:
    """The indexes of a plan's wrong calls: those a person flagged, those a person denied
    in an approval (recorded with error type `denied`) and those a guard refused (error
    type `guard_refused`): no person's flag is needed for a run to be a regression test.
    `error_types` has one entry per call of the plan (None for a call that succeeded)."""
    denied = (i for i, kind in enumerate(error_types) if kind in (DENIED, REFUSED))
    return sorted({*flagged, *denied})


def diff_plans(
    recorded: Sequence[PlannedCall], replayed: Sequence[PlannedCall], *, wrong: Iterable[int] = ()
) -> PlanDiff:
    """The diff of a replay against a recording. `wrong` indexes the recorded calls that
    were wrong (see `wrong_calls`): each is `flagged` when the replay left it out and
    `repeated` when it made it again; the other calls align as `_align` says."""
    indexed = [(i, call) for i, call in enumerate(recorded) if in_plan(call.tool)]
    bad = {i for i, _ in indexed} & set(wrong)
    rest = plan_of(replayed)
    positions = [n for n, (i, _) in enumerate(indexed) if i in bad]
    again = {indexed[n][0] for n in _repeated([c for _, c in indexed], positions, rest)}
    for i in sorted(again, reverse=True):  # the replay's copy of a repeated call is accounted
        last = max(j for j, call in enumerate(rest) if call.key == recorded[i].key)
        rest = rest[:last] + rest[last + 1 :]
    kept = [(i, call) for i, call in indexed if i not in bad]
    pending = sorted(bad)
    entries: list[DiffEntry] = []
    for n, entry in _align([call for _, call in kept], rest):
        while n is not None and pending and pending[0] < kept[n][0]:
            entries.append(_wrong_entry(recorded[pending[0]], pending.pop(0) in again))
        entries.append(entry)
    entries += [_wrong_entry(recorded[i], i in again) for i in pending]
    return PlanDiff(entries)


def _wrong_entry(call: PlannedCall, made_again: bool) -> DiffEntry:
    if made_again:
        return DiffEntry("repeated", call, call)
    return DiffEntry("flagged", recorded=call)


def _align(
    recorded: Sequence[PlannedCall], replayed: Sequence[PlannedCall]
) -> list[tuple[int | None, DiffEntry]]:
    """Align two plans (difflib on the calls' keys) and name every difference: calls
    found on both sides out of line are `moved`; what remains of an unaligned stretch
    pairs up by tool as `changed`, and the rest is `missing` or `added`. Each entry comes
    with the index of its recorded call (None for `added`)."""
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
    entries: list[tuple[int | None, DiffEntry]] = []
    for op, olds, news in stretches:
        if op == "equal":
            entries += [
                (i, DiffEntry("same", recorded[i], replayed[j]))
                for i, j in zip(olds, news, strict=True)
            ]
            continue
        free = [j for j in news if j not in claimed]
        changed = _pair_by_likeness([i for i in olds if i not in twin_of], free, recorded, replayed)
        for i in olds:
            if i in twin_of:
                entries.append((i, DiffEntry("moved", recorded[i], replayed[twin_of[i]])))
            elif i in changed:
                entries.append((i, DiffEntry("changed", recorded[i], replayed[changed[i]])))
            else:
                entries.append((i, DiffEntry("missing", recorded=recorded[i])))
        paired = set(changed.values())
        entries += [
            (None, DiffEntry("added", replayed=replayed[j])) for j in free if j not in paired
        ]
    return entries


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


def _repeated(
    plan: Sequence[PlannedCall], flagged: Iterable[int], attempted: Iterable[PlannedCall]
) -> list[int]:
    """The indexes of the calls of `plan` a person flagged that `attempted` made again. A
    flagged call that also stands unflagged in the plan counts as repeated only once the
    attempts of its unflagged twins are used up."""
    wrong = list(dict.fromkeys(flagged))
    made = Counter(call.key for call in attempted)
    made.subtract(call.key for i, call in enumerate(plan) if i not in wrong)
    repeated = []
    for index in wrong:
        if index < len(plan) and made[(call := plan[index]).key] > 0:
            made[call.key] -= 1
            repeated.append(index)
    return repeated
