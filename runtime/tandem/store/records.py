"""What the run store holds and answers with, whichever database keeps it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem_sdk.errors import TandemError

# Trace events are committed in groups (RunStore.append_event).
FLUSH_AFTER_S = 0.005
FLUSH_AT = 64
# What an event costs in a message besides its data and kind (seq, time, framing).
EVENT_OVERHEAD_CHARS = 32
ACTIVE = ("queued", "running", "waiting")  # waiting: a call waits for a person's approval
MODES = ("live", "dry_run", "replay", "shadow", "mcp")
FINAL = ("succeeded", "failed", "cancelled", "interrupted", "timed_out")
# The events a run's tool plan, recording and cost are read from: replay, shadows, export,
# flags and the ledger read only these, never a run's logs and output however many.
PLAN_KINDS = (
    "tool.call",
    "tool.result",
    "subagent.started",
    "subagent.finished",
    "model.request",
    "model.response",
    "run.escalated",
    "run.finished",
)
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "model_calls",
)


@dataclass
class Event:
    seq: int
    ts: float
    kind: str
    data: dict[str, Any]
    # `data` as the store wrote it, so a watcher or a trace read sends it without encoding
    # it again.
    data_json: str | None = field(default=None, compare=False, repr=False)


@dataclass
class RunRecord:
    id: str
    workflow: str
    workflow_version: str
    coordinator: str
    trigger: Any
    status: str
    output: Any = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_KEYS, 0))
    events: list[Event] = field(default_factory=list)
    mode: str = "live"  # live | dry_run | replay | shadow | mcp
    source_run: str | None = None  # the recorded run a replay answered from
    flag: dict[str, Any] | None = None  # {"reason", "calls": [indexes]} once a person flags it
    # A shadow's tool plan against its primary's: {"agree", "summary", "entries"}.
    plan_diff: dict[str, Any] | None = None
    queue_position: int = 0  # a queued run's place in line, as the host knows it now
    # {"reason", "at"} once a person takes the run out of validation, shadows and stats.
    excluded: dict[str, Any] | None = None
    exported_at: float | None = None  # last `runs export`: retention keeps the run
    rerun_of: str | None = None  # the run whose trigger this live run ran again

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "workflow_version": self.workflow_version,
            "coordinator": self.coordinator,
            "trigger": self.trigger,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "usage": self.usage,
            "mode": self.mode,
            "source_run": self.source_run,
            "flag": self.flag,
            "plan_diff": self.plan_diff,
            "queue_position": self.queue_position or None,
            "excluded": self.excluded,
            "exported_at": self.exported_at,
            "rerun_of": self.rerun_of,
            "events": [
                {"seq": e.seq, "ts": e.ts, "kind": e.kind, "data": e.data} for e in self.events
            ],
        }


class StoreError(TandemError):
    """The run store cannot be written or read: a full disk, a read-only or damaged file, a
    PostgreSQL server that cannot be reached. `where` names the store, never a password;
    `unavailable`: the database cannot be reached now (it may come back)."""

    def __init__(self, where: str, error: Exception | str, *, unavailable: bool = False) -> None:
        detail = " ".join(str(error).split())  # one line, whatever the driver wrote
        hint = f"; free space in {Path(where).parent}" if "full" in detail else ""
        super().__init__(f"the run store {where} cannot be used: {detail}{hint}")
        self.where = where
        self.detail = detail
        self.unavailable = unavailable


@dataclass(frozen=True)
class RunQuery:
    """Which runs to list: empty strings match everything; times are unix seconds."""

    workflow: str = ""
    status: str = ""
    coordinator: str = ""
    mode: str = ""
    modes: tuple[str, ...] = ()  # any of these, when set
    flagged: bool = False
    # Leave out excluded runs, and the shadows and replays made from them.
    without_excluded: bool = False
    since: float = 0.0
    until: float = float("inf")
    # Keyset paging: with `until`, the runs before (until, before_id) in the list's order.
    before_id: str = ""
    limit: int = 50


# The runs columns a RunRecord is read from, in _record's order: named, never `*`, so a
# column a later schema adds leaves the records as they are.
RUN_COLUMNS = (
    "id, workflow, workflow_version, coordinator, trigger_json, status, output_json, error,"
    " created_at, started_at, finished_at, usage_json, host_pid, mode, source_run, flag_json,"
    " plan_diff_json, excluded_json, exported_at, rerun_of"
)


def run_record(row: tuple[Any, ...]) -> RunRecord:
    (
        run_id,
        workflow,
        version,
        coordinator,
        trigger_json,
        status,
        output_json,
        error,
        created_at,
        started_at,
        finished_at,
        usage_json,
        _pid,
        mode,
        source_run,
        flag_json,
        plan_diff_json,
        excluded_json,
        exported_at,
        rerun_of,
    ) = row
    return RunRecord(
        id=run_id,
        workflow=workflow,
        workflow_version=version,
        coordinator=coordinator,
        trigger=json.loads(trigger_json),
        status=status,
        output=json.loads(output_json) if output_json else None,
        error=error,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        usage={**dict.fromkeys(USAGE_KEYS, 0), **json.loads(usage_json)},
        mode=mode,
        source_run=source_run,
        flag=json.loads(flag_json) if flag_json else None,
        plan_diff=json.loads(plan_diff_json) if plan_diff_json else None,
        excluded=json.loads(excluded_json) if excluded_json else None,
        exported_at=exported_at,
        rerun_of=rerun_of,
    )
