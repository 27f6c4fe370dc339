"""The public Python client of a host's Control interface (`tandem serve`'s socket, or a
host embedded in a `tandem` command): the CLI, `tandem rewrite`, the demo, the benchmarks
and the tests all use it, and so may any program that drives Tandem. ToolHost's clients
(`ToolHostClient`, `AsyncToolHostClient`: the SDK's, which scripts and the LLM coordinator
use) are exported here too, for a program that opens a session (`open_session`) and calls
its tools with the session's run token, as `tandem mcp serve` does."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from tandem_sdk._convert import ToolInfo, tool_info, usage_of
from tandem_sdk._pb import control_pb2, control_pb2_grpc
from tandem_sdk.aio import AsyncToolHostClient
from tandem_sdk.client import ToolHostClient
from tandem_sdk.protocol import GRPC_OPTIONS, MAX_MESSAGE_BYTES

from tandem.store import Event, RunRecord

__all__ = [
    "AsyncToolHostClient",
    "ControlClient",
    "EventStream",
    "OpenSession",
    "ToolHostClient",
    "ToolInfo",
]

CLOSE_WAIT_S = 30.0  # how long close() waits for the daemon to end the run


@dataclass
class OpenSession:
    """A run that lasts while this is open (Control OpenSession): `close()` ends it as
    succeeded; a process that dies without closing it has its run cancelled."""

    run_id: str
    token: str
    tools: list[ToolInfo]
    toolhost_target: str  # the gRPC target to call the tools at, with `token`
    _requests: queue.SimpleQueue[control_pb2.SessionRequest | None]
    _replies: Iterator[control_pb2.SessionReply]
    # One thread reads the replies (a gRPC stream read from two at once fails): holds()
    # if it runs, else close(). `_ended` is set once the reader has seen the stream end.
    _reader: threading.Lock = field(default_factory=threading.Lock)
    _ended: threading.Event = field(default_factory=threading.Event)

    def holds(self) -> Iterator[control_pb2.ApprovalHeld]:
        """The run's calls held for a person's approval, as they are held, until the
        session ends (blocking: a thread of its own follows it). One follower at most."""
        if not self._reader.acquire(blocking=False):
            return
        try:
            for reply in self._replies:
                if reply.HasField("held"):
                    yield reply.held
        finally:
            self._ended.set()

    def close(self, within_s: float = CLOSE_WAIT_S) -> None:
        """End the run (succeeded) and wait, at most `within_s`, until the daemon has."""
        self._requests.put(control_pb2.SessionRequest(close=True))
        self._requests.put(None)
        if not self._reader.acquire(blocking=False):  # holds() reads: it sees the end
            self._ended.wait(within_s)
            return
        try:
            for _ in self._replies:
                pass
        finally:
            self._ended.set()


class EventStream:
    """A run's events as WatchRun streams them. `cancel()` may be called from another thread
    or a signal handler: the iteration then raises RpcError CANCELLED."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Event]:
        for batch in self._call:
            for message in batch.events:
                yield Event(message.seq, message.ts, message.kind, json.loads(message.data_json))

    def cancel(self) -> None:
        self._call.cancel()


class ControlClient:
    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self._channel = grpc.insecure_channel(f"unix:{socket}", options=GRPC_OPTIONS)
        self.stub = control_pb2_grpc.ControlStub(self._channel)

    @classmethod
    def connect(cls, socket: Path, timeout: float = 2.0) -> ControlClient | None:
        """A client if a daemon answers on `socket`, else None."""
        if not socket.exists():
            return None
        client = cls(socket)
        try:
            client.stub.Health(control_pb2.HealthRequest(), timeout=timeout)
        except grpc.RpcError:
            client.close()
            return None
        return client

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def trigger(
        self,
        workflow: str,
        payload: Any,
        coordinator: str | None,
        *,
        dry_run: bool = False,
        workflow_path: Path | None = None,
    ) -> str:
        request = control_pb2.TriggerRequest(
            workflow=workflow,
            payload_json=json.dumps(payload),
            coordinator=coordinator or "",
            dry_run=dry_run,
            workflow_path=str(workflow_path) if workflow_path else "",
        )
        return str(self.stub.Trigger(request).run_id)

    def watch(self, run_id: str) -> EventStream:
        """The run's events so far, then each one as it is written, until the run ends."""
        return EventStream(self.stub.WatchRun(control_pb2.WatchRunRequest(run_id=run_id)))

    def run(self, run_id: str) -> RunRecord:
        """The run with its whole trace, read a page at a time (each within this client's
        message limit), the record as the last page has it."""
        events: list[Event] = []
        after = 0
        while True:
            request = control_pb2.GetRunTraceRequest(
                run_id=run_id, after_seq=after, max_bytes=MAX_MESSAGE_BYTES
            )
            message = self.stub.GetRunTrace(request)
            record = record_from_message(message)
            events.extend(record.events)
            if not message.more_events or not record.events:
                record.events = events
                return record
            after = record.events[-1].seq

    def runs(
        self, workflow: str = "", status: str = "", limit: int = 50, **filters: Any
    ) -> list[RunRecord]:
        """Recent runs, newest first; `filters`: coordinator, mode, modes, flagged, since,
        until, without_excluded."""
        request = control_pb2.ListRunsRequest(
            workflow=workflow, status=status, limit=limit, **filters
        )
        return [record_from_message(m) for m in self.stub.ListRuns(request).runs]

    def replay(
        self,
        run_id: str,
        coordinator: str | None = None,
        workflow_path: str | None = None,
        live_reads: bool = False,
    ) -> str:
        request = control_pb2.ReplayRequest(
            run_id=run_id,
            coordinator=coordinator or "",
            workflow_path=workflow_path or "",
            live_reads=live_reads,
        )
        return str(self.stub.Replay(request).run_id)

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run; False when it is neither."""
        reply = self.stub.CancelRun(control_pb2.CancelRunRequest(run_id=run_id))
        return bool(reply.cancelled)

    def export(self, run_id: str) -> dict[str, Any]:
        """The run as a fixture (see tandem.replay.fixtures)."""
        reply = self.stub.ExportRun(control_pb2.ExportRunRequest(run_id=run_id))
        fixture: dict[str, Any] = json.loads(reply.fixture_json)
        return fixture

    def ledger(self, workflow: str, since: float, until: float, limit: int) -> dict[str, Any]:
        """The ledger report, computed by the daemon (what `tandem stats --json` prints)."""
        request = control_pb2.GetLedgerRequest(
            workflow=workflow, since=since, until=until, limit=limit
        )
        report: dict[str, Any] = json.loads(self.stub.GetLedger(request).ledger_json)
        return report

    def flag(self, run_id: str, reason: str, calls: list[int]) -> None:
        self.stub.FlagRun(control_pb2.FlagRunRequest(run_id=run_id, reason=reason, calls=calls))

    def exclude(self, run_id: str, reason: str = "", *, include: bool = False) -> None:
        """Take a run out of validation, shadows' agreement and stats (or back in)."""
        request = control_pb2.ExcludeRunRequest(run_id=run_id, reason=reason, include=include)
        self.stub.ExcludeRun(request)

    def prune(
        self, before: float, *, include_flagged: bool = False, include_exported: bool = False
    ) -> tuple[int, int]:
        """Delete finished runs created before `before`: (deleted, kept as flagged or
        exported)."""
        reply = self.stub.PruneRuns(
            control_pb2.PruneRunsRequest(
                before=before, include_flagged=include_flagged, include_exported=include_exported
            )
        )
        return reply.pruned, reply.kept

    def open_session(self, workflow: str, client_name: str, client_version: str) -> OpenSession:
        """A run of `workflow` for a session of a client (an MCP client: mode `mcp`)."""
        requests: queue.SimpleQueue[control_pb2.SessionRequest | None] = queue.SimpleQueue()
        requests.put(
            control_pb2.SessionRequest(
                workflow=workflow, client_name=client_name, client_version=client_version
            )
        )
        replies = self.stub.OpenSession(iter(requests.get, None))
        first = next(replies)
        return OpenSession(
            first.run_id,
            first.run_token,
            [tool_info(t) for t in first.tools],
            first.toolhost_target,
            requests,
            replies,
        )

    def tools(self, workflow: str = "") -> list[ToolInfo]:
        """Every tool, or those a run of `workflow` may call."""
        reply = self.stub.ListWorkflowTools(control_pb2.ListWorkflowToolsRequest(workflow=workflow))
        return [tool_info(t) for t in reply.tools]

    def workflows(self) -> list[control_pb2.WorkflowInfo]:
        return list(self.stub.ListWorkflows(control_pb2.ListWorkflowsRequest()).workflows)

    def decide(self, run_id: str, call: int, approve: bool, reason: str = "") -> list[int]:
        """Approve or deny a waiting call (0: every call waiting); the calls decided."""
        request = control_pb2.DecideRequest(
            run_id=run_id, call=call, approve=approve, reason=reason
        )
        return list(self.stub.Decide(request).calls)

    def rerun(self, run_id: str, coordinator: str | None = None) -> str:
        request = control_pb2.RerunRunRequest(run_id=run_id, coordinator=coordinator or "")
        return str(self.stub.RerunRun(request).run_id)


def record_from_message(message: control_pb2.RunRecord) -> RunRecord:
    return RunRecord(
        id=message.id,
        workflow=message.workflow,
        workflow_version=message.workflow_version,
        coordinator=message.coordinator,
        trigger=json.loads(message.trigger_json or "null"),
        status=message.status,
        output=json.loads(message.output_json or "null"),
        error=message.error or None,
        created_at=message.created_at,
        started_at=message.started_at or None,
        finished_at=message.finished_at or None,
        usage=usage_of(message.usage),
        events=[Event(e.seq, e.ts, e.kind, json.loads(e.data_json)) for e in message.events],
        mode=message.mode or "live",
        source_run=message.source_run or None,
        flag=json.loads(message.flag_json) if message.flag_json else None,
        plan_diff=json.loads(message.plan_diff_json) if message.plan_diff_json else None,
        queue_position=message.queue_position,
        excluded=json.loads(message.excluded_json) if message.excluded_json else None,
        exported_at=message.exported_at or None,
        rerun_of=message.rerun_of or None,
    )
