"""A run's trace as the console shows it: model turns and tool calls as entries, each call
with its result, its wait for approval and its marks; numbered as `tandem runs show`
numbers them (tandem.cli.render)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tandem.cli.render import SOURCE_MARKS, denied_result, format_event, own_call
from tandem.ledger.prices import PriceTable
from tandem.store import Event, RunRecord

# Folded into their call or turn rather than shown on their own.
_FOLDED = ("tool.result", "approval.waiting", "approval.decided", "model.request")


@dataclass
class Call:
    seq: int
    ts: float
    tool: str
    arguments: str  # JSON, indented
    number: int | None = None  # as `runs show` numbers it; None for a subagent's
    subagent: str = ""
    mark: str = ""  # planned, answered from the recording, ...
    state: str = "running"  # waiting (for approval) | running | ok | error
    result: str = ""  # JSON, or the error
    duration_ms: float | None = None
    waited_ms: float | None = None  # for approval, within duration_ms
    deadline: float | None = None  # while waiting: when it is denied without a decision
    denied: bool = False
    decision: str = ""  # "approved by console", "denied by control: why"
    flagged: bool = False


@dataclass
class Turn:
    seq: int
    ts: float
    turn: int
    model: str = ""
    subagent: str = ""
    waiting: bool = True  # no response yet
    stop_reason: str = ""
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float | None = None  # USD; None when the model has no price
    latency_ms: float | None = None
    text: str = ""


@dataclass
class Note:
    seq: int
    ts: float
    kind: str
    text: str


Entry = Call | Turn | Note


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def timeline(record: RunRecord, prices: PriceTable) -> list[Entry]:
    """The run's entries in trace order."""
    entries: list[Entry] = []
    calls: dict[int, Call] = {}  # by tool.call seq
    numbered: dict[int, Call] = {}  # by number in the trace
    turns: dict[tuple[Any, Any], Turn] = {}
    flagged = set((record.flag or {}).get("calls", []))
    waits: dict[int, float] = {}
    for event in record.events:
        data = event.data
        if event.kind == "tool.call":
            made = _call(event, len(numbered) + 1 if own_call(event) else None)
            made.flagged = made.number is not None and made.number - 1 in flagged
            calls[event.seq] = made
            if made.number is not None:
                numbered[made.number] = made
            entries.append(made)
        elif event.kind == "tool.result":
            if (closed := calls.get(int(data.get("call", 0)))) is not None:
                _close(closed, data)
        elif event.kind in ("approval.waiting", "approval.decided"):
            held = _held(event, numbered, calls)
            if held is None:
                continue
            if event.kind == "approval.waiting":
                held.state = "waiting"
                waits[held.seq] = event.ts
                held.deadline = event.ts + float(data.get("timeout_s", 0.0))
            else:
                _decided(held, data, event.ts - waits.get(held.seq, event.ts))
        elif event.kind == "model.request":
            turn = Turn(event.seq, event.ts, int(data.get("turn", 0)), str(data.get("model", "")))
            turn.subagent = str(data.get("subagent", ""))
            turns[(data.get("subagent"), data.get("turn"))] = turn
            entries.append(turn)
        elif event.kind == "model.response":
            turn = turns.get((data.get("subagent"), data.get("turn"))) or Turn(
                event.seq, event.ts, int(data.get("turn", 0))
            )
            if turn not in entries:
                entries.append(turn)
            _answered(turn, data, prices)
        elif event.kind not in _FOLDED:
            entries.append(Note(event.seq, event.ts, event.kind, _note(event)))
    return entries


def _held(event: Event, numbered: dict[int, Call], calls: dict[int, Call]) -> Call | None:
    """The call an approval event is about: by its number, or, for a subagent's call (the
    events carry no number then), the latest unnumbered call of that tool not yet held
    (approval.waiting) or the oldest one still waiting (approval.decided)."""
    if "call" in event.data:
        return numbered.get(int(event.data["call"]))
    tool = str(event.data.get("tool", ""))
    unnumbered = [c for c in calls.values() if c.number is None and c.tool == tool]
    if event.kind == "approval.waiting":
        fresh = [c for c in unnumbered if c.state == "running" and not c.decision]
        return fresh[-1] if fresh else None
    waiting = [c for c in unnumbered if c.state == "waiting"]
    return waiting[0] if waiting else None


def _call(event: Event, number: int | None) -> Call:
    data = event.data
    source = str(data.get("source", "plugin"))
    return Call(
        seq=event.seq,
        ts=event.ts,
        tool=str(data.get("tool", "")),
        arguments=_pretty(data.get("arguments", {})),
        number=number,
        subagent=str(data.get("subagent", "")),
        mark=SOURCE_MARKS.get(source, "").strip("[]"),
    )


def _close(call: Call, data: dict[str, Any]) -> None:
    call.duration_ms = float(data.get("duration_ms", 0.0))
    if data.get("ok"):
        call.state, call.result = "ok", _pretty(data.get("result"))
    else:
        call.state = "error"
        call.result = f"{data.get('error_type')}: {data.get('message')}"
        call.denied = denied_result(data)


def _decided(call: Call, data: dict[str, Any], waited_s: float) -> None:
    call.waited_ms = waited_s * 1000
    call.deadline = None
    by = f" by {data['by']}" if data.get("by") else ""
    if data.get("approved"):
        call.decision = f"approved{by}"
    else:
        call.decision = f"denied{by}: {data.get('reason')}"
    if call.state == "waiting":
        call.state = "running"


def _answered(turn: Turn, data: dict[str, Any], prices: PriceTable) -> None:
    usage = data.get("usage") or {}
    turn.waiting = False
    turn.stop_reason = str(data.get("stop_reason", ""))
    turn.tokens = {key: int(value or 0) for key, value in usage.items()}
    turn.latency_ms = float(data.get("latency_ms", 0.0))
    turn.text = str(data.get("text") or "")
    price = prices.price(turn.model) if turn.model else None
    turn.cost = None if price is None else price.cost(turn.tokens)


def _note(event: Event) -> str:
    """The line `tandem runs show` prints for the event, without its time and kind."""
    return format_event(event).split(None, 2)[-1] if event.data else ""
