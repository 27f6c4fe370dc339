"""The Control servicer: the owner-only admin interface used by the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from tandem_sdk._pb import common_pb2, control_pb2, control_pb2_grpc
from tandem_sdk.errors import InvalidArguments, NotFound
from tandem_sdk.protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION

from tandem import __version__
from tandem.blocking import in_thread
from tandem.builtin import BUILTIN_FOLDERS
from tandem.cluster import members, remote
from tandem.isolation import STRICTNESS
from tandem.plugins import confine
from tandem.retention import prune
from tandem.runs import RunManager
from tandem.session import tools_in_scope
from tandem.store import Event, RunQuery, RunRecord
from tandem.zygote.client import Zygote

from .status import streaming, unary
from .toolhost import tool_spec

Context = grpc.aio.ServicerContext[Any, Any]
# A watch message holds events up to about this much JSON (one event may be larger), well
# inside the message limit.
WATCH_MESSAGE_CHARS = 1024 * 1024
# Room a trace page leaves in its message for what is not counted exactly.
PAGE_MARGIN_BYTES = 4096
LEDGER_LIMIT = 5000  # runs a ledger counts at most, unless asked otherwise


def event_message(event: Event) -> control_pb2.RunEvent:
    data_json = event.data_json if event.data_json is not None else json.dumps(event.data)
    return control_pb2.RunEvent(seq=event.seq, ts=event.ts, kind=event.kind, data_json=data_json)


def record_message(record: RunRecord, queue_position: int = 0) -> control_pb2.RunRecord:
    return control_pb2.RunRecord(
        id=record.id,
        workflow=record.workflow,
        workflow_version=record.workflow_version,
        coordinator=record.coordinator,
        trigger_json=json.dumps(record.trigger),
        status=record.status,
        output_json=json.dumps(record.output),
        error=record.error or "",
        created_at=record.created_at,
        started_at=record.started_at or 0.0,
        finished_at=record.finished_at or 0.0,
        usage=common_pb2.Usage(**record.usage),
        events=[event_message(e) for e in record.events],
        mode=record.mode,
        source_run=record.source_run or "",
        flag_json=json.dumps(record.flag) if record.flag else "",
        plan_diff_json=json.dumps(record.plan_diff) if record.plan_diff else "",
        queue_position=queue_position,
        excluded_json=json.dumps(record.excluded) if record.excluded else "",
        exported_at=record.exported_at or 0.0,
        rerun_of=record.rerun_of or "",
    )


class ControlServicer(control_pb2_grpc.ControlServicer):
    def __init__(
        self,
        runs: RunManager,
        isolation: str,
        reload: Callable[[], list[str]],
        zygote: Zygote | None = None,
        project_root: Path | None = None,  # where tandem.yaml names prices for the ledger
    ) -> None:
        self._runs = runs
        self._project_root = project_root
        self._isolation = isolation
        self._reload = reload
        self._zygote = zygote
        self.plugin_isolation = confine.isolation()  # Health's; the host sets its own
        self.toolhost_target = ""  # the shared ToolHost socket, for OpenSession's reply

    @unary
    async def Health(
        self, request: control_pb2.HealthRequest, context: Context
    ) -> control_pb2.HealthResponse:
        plugins = self._runs.plugins.plugins
        # A plugin that never loaded has no process: only its load error.
        never = {
            name: why for name, why in self._runs.plugins.broken.items() if name not in plugins
        }
        zygote = self._zygote
        now = self._runs.node.now()  # the clock heartbeats are written with

        def kind_of(name: str) -> str:
            return "mcp" if name in self._runs.plugins.mcp_names else "plugin"

        return control_pb2.HealthResponse(
            zygote_tiers=[t for t in STRICTNESS if zygote is not None and zygote.serves(t)],
            zygote_pid=(zygote.pid if zygote is not None else None) or 0,
            version=__version__,
            protocol_version=PROTOCOL_VERSION,
            active_runs=self._runs.active,
            queued_runs=self._runs.queued,
            isolation=self._isolation,
            plugin_isolation=self.plugin_isolation,
            daemon_id=self._runs.node.id,
            daemons=[
                control_pb2.ClusterMember(
                    id=m.id,
                    host=m.host,
                    pid=m.pid,
                    state_dir=m.state_dir,
                    started_at=m.started_at,
                    heartbeat_age_s=max(0.0, now - m.heartbeat_at),
                    in_flight=m.in_flight,
                )
                for m in members.members(self._runs.store)
            ],
            plugins_down=[name for name, plugin in plugins.items() if not plugin.up],
            plugins=sorted(
                [
                    *(
                        control_pb2.PluginStatus(
                            name=name,
                            up=plugin.up,
                            pid=plugin.pid or 0,
                            uid=plugin.uid or 0,
                            restarts=plugin.restarts,
                            crash_loop=plugin.crash_loop,
                            last_error=plugin.last_error or "",
                            load_error=plugin.load_error or "",
                            environment=plugin.environment_digests(request.environment_nonce),
                            kind=plugin.kind,
                            version=plugin.version or "",
                        )
                        for name, plugin in plugins.items()
                    ),
                    *(
                        control_pb2.PluginStatus(name=n, load_error=e, kind=kind_of(n))
                        for n, e in never.items()
                    ),
                ],
                key=lambda status: status.name,
            ),
        )

    @unary
    async def Trigger(
        self, request: control_pb2.TriggerRequest, context: Context
    ) -> control_pb2.TriggerResponse:
        try:
            payload = json.loads(request.payload_json or "null")
        except json.JSONDecodeError as error:
            raise InvalidArguments(f"payload is not JSON: {error}") from None
        path = Path(request.workflow_path) if request.workflow_path else None
        if path is not None and path.resolve() not in BUILTIN_FOLDERS:
            # A folder of a client's choosing would run live under any name: only tandem's own.
            raise InvalidArguments(
                f"{path} is not a workflow tandem ships: a trigger runs the project's workflows"
            )
        folder = self._runs.load_folder(path) if path is not None else None
        if folder is not None and folder.name != request.workflow:
            raise InvalidArguments(f"{path} is workflow {folder.name!r}, not {request.workflow!r}")
        session = self._runs.trigger(
            request.workflow,
            payload,
            request.coordinator or None,
            dry_run=request.dry_run,
            check_payload=True,  # a person's or a client's trigger: the schema is for them
            workflow=folder,
        )
        return control_pb2.TriggerResponse(run_id=session.id)

    @unary
    async def ListWorkflows(
        self, request: control_pb2.ListWorkflowsRequest, context: Context
    ) -> control_pb2.ListWorkflowsResponse:
        infos = []
        for state in self._runs.registry.states():
            workflow = state.current
            info = control_pb2.WorkflowInfo(
                name=state.name, error=str(state.error or ""), loaded=workflow is not None
            )
            if workflow is not None:
                spec = workflow.spec
                info.description = spec.description
                info.coordinator = spec.coordinator
                info.version = workflow.version
                info.tools.extend(spec.tools)
                info.triggers.extend(t.describe() for t in spec.triggers)
                if spec.input_schema is not None:
                    info.input_schema_json = json.dumps(spec.input_schema)
            infos.append(info)
        return control_pb2.ListWorkflowsResponse(
            workflows=infos, plugin_errors=[str(e) for e in self._runs.plugins.errors]
        )

    @unary
    async def ListWorkflowTools(
        self, request: control_pb2.ListWorkflowToolsRequest, context: Context
    ) -> control_pb2.ListWorkflowToolsResponse:
        tools = self._runs.plugins.tools()
        if request.workflow:
            workflow = self._runs.registry.get(request.workflow)
            if workflow is None:
                raise self._runs.unknown_workflow(request.workflow)
            tools = tools_in_scope(self._runs.plugins, workflow)
        return control_pb2.ListWorkflowToolsResponse(
            tools=[tool_spec(t) for t in tools],
            plugin_errors=[str(e) for e in self._runs.plugins.errors],
        )

    @unary
    async def ListRuns(
        self, request: control_pb2.ListRunsRequest, context: Context
    ) -> control_pb2.ListRunsResponse:
        if request.workflow:  # a misspelled name is an error, not an empty list
            self._runs.check_workflow_name(request.workflow)
        query = RunQuery(
            workflow=request.workflow,
            status=request.status,
            coordinator=request.coordinator,
            mode=request.mode,
            modes=tuple(request.modes),
            flagged=request.flagged,
            without_excluded=request.without_excluded,
            since=request.since,
            until=request.until or float("inf"),
            limit=request.limit or 50,
        )
        records = self._runs.store.list(query)
        position = self._runs.queue_position
        return control_pb2.ListRunsResponse(
            runs=[record_message(r, position(r.id, r)) for r in records]
        )

    @unary
    async def Replay(
        self, request: control_pb2.ReplayRequest, context: Context
    ) -> control_pb2.TriggerResponse:
        session = self._runs.replay(
            request.run_id,
            request.coordinator or None,
            workflow_path=Path(request.workflow_path) if request.workflow_path else None,
            live_reads=request.live_reads,
        )
        return control_pb2.TriggerResponse(run_id=session.id)

    @unary
    async def Decide(
        self, request: control_pb2.DecideRequest, context: Context
    ) -> control_pb2.DecideResponse:
        reason = request.reason or ("approved" if request.approve else "denied")
        decided = await remote.decide(
            self._runs, request.run_id, request.call or None, request.approve, reason, "control"
        )
        return control_pb2.DecideResponse(calls=decided)

    @unary
    async def ExportRun(
        self, request: control_pb2.ExportRunRequest, context: Context
    ) -> control_pb2.ExportRunResponse:
        fixture = self._runs.export(request.run_id)
        return control_pb2.ExportRunResponse(fixture_json=json.dumps(fixture))

    @unary
    async def FlagRun(
        self, request: control_pb2.FlagRunRequest, context: Context
    ) -> control_pb2.FlagRunResponse:
        self._runs.flag(request.run_id, request.reason, list(request.calls))
        return control_pb2.FlagRunResponse()

    @unary
    async def GetLedger(
        self, request: control_pb2.GetLedgerRequest, context: Context
    ) -> control_pb2.GetLedgerResponse:
        from tandem.ledger import load_prices
        from tandem.ledger.report import ledger_report

        if request.limit < 0:
            raise InvalidArguments("limit must be at least 1")
        if request.workflow:
            self._runs.check_workflow_name(request.workflow)
        root = self._project_root or self._runs.registry.folder.parent
        prices = load_prices(root)
        limit = request.limit or LEDGER_LIMIT
        report = ledger_report(
            self._runs.store, prices, request.workflow, request.since, request.until, limit
        )
        return control_pb2.GetLedgerResponse(ledger_json=json.dumps(report))

    @unary
    async def ExcludeRun(
        self, request: control_pb2.ExcludeRunRequest, context: Context
    ) -> control_pb2.ExcludeRunResponse:
        excluded = None if request.include else {"reason": request.reason, "at": time.time()}
        if not self._runs.store.exclude(request.run_id, excluded):
            raise NotFound(f"no run {request.run_id!r}")
        return control_pb2.ExcludeRunResponse()

    @unary
    async def PruneRuns(
        self, request: control_pb2.PruneRunsRequest, context: Context
    ) -> control_pb2.PruneRunsResponse:
        pruned = await in_thread(
            prune,
            self._runs.store.location,
            request.before,
            include_flagged=request.include_flagged,
            include_exported=request.include_exported,
        )
        return control_pb2.PruneRunsResponse(pruned=pruned.runs, kept=pruned.kept)

    @unary
    async def RerunRun(
        self, request: control_pb2.RerunRunRequest, context: Context
    ) -> control_pb2.TriggerResponse:
        session = self._runs.rerun(request.run_id, request.coordinator or None)
        return control_pb2.TriggerResponse(run_id=session.id)

    @unary
    async def GetRunTrace(
        self, request: control_pb2.GetRunTraceRequest, context: Context
    ) -> control_pb2.RunRecord:
        record = self._runs.record(request.run_id, events=False)
        message = record_message(record, self._runs.queue_position(record.id, record))
        limit = min(request.max_bytes or MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES)
        room = max(limit - message.ByteSize() - PAGE_MARGIN_BYTES, PAGE_MARGIN_BYTES)
        events, more = self._runs.store.events_page(record.id, request.after_seq, room)
        for event in events:
            if len(event.data_json or "") > room:  # one event alone over the message limit
                event.data_json = json.dumps({"over_message_limit": len(event.data_json or "")})
            message.events.append(event_message(event))
        message.more_events = more
        return message

    @streaming
    async def WatchRun(
        self, request: control_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[control_pb2.RunEvents]:
        async for events in self._runs.watch(request.run_id):
            batch: list[control_pb2.RunEvent] = []
            size = 0
            for event in events:
                message = event_message(event)
                if batch and size + len(message.data_json) > WATCH_MESSAGE_CHARS:
                    yield control_pb2.RunEvents(events=batch)
                    batch, size = [], 0
                batch.append(message)
                size += len(message.data_json)
            if batch:
                yield control_pb2.RunEvents(events=batch)

    @unary
    async def CancelRun(
        self, request: control_pb2.CancelRunRequest, context: Context
    ) -> control_pb2.CancelRunResponse:
        cancelled = await remote.cancel(self._runs, request.run_id)
        return control_pb2.CancelRunResponse(cancelled=cancelled)

    @unary
    async def Reload(
        self, request: control_pb2.ReloadRequest, context: Context
    ) -> control_pb2.ReloadResponse:
        return control_pb2.ReloadResponse(errors=self._reload())

    @streaming
    async def OpenSession(
        self, requests: AsyncIterator[control_pb2.SessionRequest], context: Context
    ) -> AsyncIterator[control_pb2.SessionReply]:
        first = await anext(aiter(requests), None)
        if first is None:
            return
        client = {"name": first.client_name, "version": first.client_version}
        session = self._runs.open_session(first.workflow, client)
        clean = False
        try:
            yield control_pb2.SessionReply(
                run_id=session.id,
                run_token=session.token,
                tools=[tool_spec(t) for t in session.tools_in_scope()],
                toolhost_target=self.toolhost_target,
            )
            closing = asyncio.ensure_future(_closed_or_ended(requests, session.finished))
            try:
                async for held in _holds(session.subscribe, session.unsubscribe, closing):
                    yield control_pb2.SessionReply(held=held)
                clean = await closing
            finally:
                closing.cancel()
        finally:
            # Anything but the client's `close` (a stream that breaks when the client dies
            # reads as one that ends) cancels the run: never a leaked run.
            if clean:
                self._runs.close_session(session.id)
            else:
                self._runs.cancel(session.id)


async def _holds(
    subscribe: Callable[[], asyncio.Queue[Event | None]],
    unsubscribe: Callable[[asyncio.Queue[Event | None]], None],
    until: asyncio.Future[bool],
) -> AsyncIterator[control_pb2.ApprovalHeld]:
    """The run's calls held for approval, as they are held, until `until` is done."""
    events = subscribe()
    try:
        while True:
            getting = asyncio.ensure_future(events.get())
            await asyncio.wait((getting, until), return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                return
            event = getting.result()
            if event is None:  # the run ended: no more holds
                return
            if event.kind == "approval.waiting":
                data = event.data
                yield control_pb2.ApprovalHeld(
                    tool=str(data.get("tool", "")),
                    call=int(data.get("call") or 0),
                    decide=str(data.get("decide", "")),
                )
    finally:
        unsubscribe(events)


async def _closed_or_ended(requests: AsyncIterator[Any], finished: asyncio.Event) -> bool:
    """Wait until the client sends `close` (True), or the stream or the run ends (False).
    The end of the requests alone proves nothing: gRPC ends them the same way when the
    client's connection breaks as when it closes its side."""

    async def drain() -> bool:
        async for request in requests:
            if request.close:
                return True
        return False

    closing = asyncio.ensure_future(drain())
    ending = asyncio.ensure_future(finished.wait())
    try:
        await asyncio.wait((closing, ending), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (closing, ending):
            task.cancel()
    done = closing.done() and not closing.cancelled() and closing.exception() is None
    return done and closing.result()
