"""Runs: created from a trigger, executed by the workflow's coordinator under its limits,
and finished exactly once with a status the store keeps."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from tandem_sdk.errors import (
    DefinitionError,
    InvalidArguments,
    LimitExceeded,
    NotFound,
    TandemError,
    Unauthenticated,
)

from .approvals import ApprovalObserver
from .cluster import claims, wakeup
from .cluster.node import Node
from .config import DEFAULT_RECORD_MAX_RESULT_BYTES
from .coordinators.base import Coordinator
from .coordinators.handover import hand_over
from .coordinators.mcp import McpCoordinator
from .errors import Escalated, LimitReached, RunFailed
from .guards import RunGuards, guards_for
from .plugins import PluginManager
from .replay import fixture_of
from .replay.recording import Recording, attempted_plan
from .session import RunMode, RunSession
from .store import FINAL, PLAN_KINDS, USAGE_KEYS, Event, RunQuery, RunRecord, RunStore, StoreError
from .suggest import did_you_mean
from .workflows import Workflow, WorkflowRegistry
from .workflows.loader import WorkflowError, load_workflow

log = logging.getLogger(__name__)
# A watcher gets a run's live events in batches gathered this long (as the trace writer
# commits them): a message per batch, not one per event, for a run calling tools quickly.
WATCH_GATHER_S = 0.005
# The events a watcher is sent of what was written before it came, a page at a time: a
# trace of any size, never read whole.
WATCH_PAGE_CHARS = 1024 * 1024
# A watcher of a run another daemon executes (or that waits in the shared queue) reads the
# store this often.
REMOTE_POLL_S = 0.1


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


class ShuttingDown(TandemError):
    pass


class QueueFull(LimitExceeded):
    """More runs wait than `runs.max_queued` allows: try again later."""

    retry_after_s = 30


def version_content(workflow: Workflow) -> dict[str, Any]:
    """What a workflow version is made of, kept beside the runs that used it."""
    return {
        "spec": workflow.spec.model_dump(mode="json"),
        "prompt": workflow.prompt_text,
        "script": workflow.script_source,
        "files": {path: data.decode("utf-8", "replace") for path, data in workflow.files.items()},
        "guards": workflow.guards_source,
    }


class RunManager:
    def __init__(
        self,
        store: RunStore,
        plugins: PluginManager,
        registry: WorkflowRegistry,
        coordinators: Mapping[str, Coordinator],
        *,
        node: Node,
        record_max_result_bytes: int = DEFAULT_RECORD_MAX_RESULT_BYTES,
        max_in_flight: int = 8,
        max_queued: int = 1000,
    ) -> None:
        self.record_max_result_bytes = record_max_result_bytes
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        # This host's own runs created but not started, oldest first (admission control);
        # live runs a daemon cannot start at once wait in the store, for any daemon.
        self._queue: deque[RunSession] = deque()
        self.node = node
        # The attempt of each run this host started: its writes of the run are fenced by it.
        self._attempts: dict[str, int] = {}
        self._taken_over: set[str] = set()  # runs of this host another daemon took
        self.store = store
        self.plugins = plugins
        self.registry = registry
        self.coordinators = coordinators
        self.sessions: dict[str, RunSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Versions already in the store: a Trigger then skips dumping the workflow again.
        self._kept_versions: set[str] = set()
        self.accepting = True
        # Why this host has no model for an llm shadow (no key; or its model is scripted
        # for the runs of one command): such a shadow is recorded as skipped, not run.
        self.skip_llm_shadows: str | None = None
        # Told of every held call and its end (a daemon's Slack announcements); each run
        # takes the one set when it is made.
        self.approval_observer: ApprovalObserver | None = None

    def trigger(
        self,
        workflow_name: str,
        payload: Any,
        coordinator: str | None = None,
        *,
        dry_run: bool = False,
        replay: Recording | None = None,
        live_reads: bool = False,
        workflow: Workflow | None = None,
        rerun_of: str | None = None,
        check_payload: bool = False,
        mcp: bool = False,
        candidate: bool = False,
    ) -> RunSession:
        """Start a run. `dry_run` plans every call with side effects instead of making it;
        `replay` answers calls from a recorded run; `workflow` replaces the registry's
        version (a candidate folder); `rerun_of` names the run whose trigger this is again;
        `check_payload` refuses a payload that misses the workflow's input_schema
        (InvalidArguments), before any run is made; `mcp` makes an MCP session's run
        (`open_session`); `candidate` marks a replay through a candidate's folder. Once the
        run is in the store the trigger answers with it, whatever fails later (a store that
        goes away then): a caller told UNAVAILABLE has no run."""
        if not self.accepting:
            raise ShuttingDown("the host is shutting down and takes no new runs")
        workflow = workflow or self.registry.get(workflow_name)
        if workflow is None:
            state = next((s for s in self.registry.states() if s.name == workflow_name), None)
            if state and state.error:
                raise DefinitionError(workflow_name, f"workflow failed to load:\n{state.error}")
            raise self.unknown_workflow(workflow_name)
        problem = workflow.payload_problem(payload) if check_payload else None
        if problem is not None:
            raise InvalidArguments(
                f"the payload does not match workflow {workflow.name}'s input_schema: {problem}"
            )
        kind = "mcp" if mcp else coordinator or workflow.spec.coordinator
        if kind == "mcp" and not mcp:
            raise InvalidArguments("coordinator mcp is an MCP session's: see tandem mcp serve")
        if kind not in self.coordinators:
            raise DefinitionError(workflow_name, f"unknown coordinator {kind!r}")
        if kind == "script" and workflow.script_source is None:
            raise DefinitionError(workflow_name, "coordinator script needs coordinator_script")
        if kind == "llm" and workflow.prompt_text is None:
            raise DefinitionError(workflow_name, "coordinator llm needs a prompt")
        if not mcp and claims.queued(self.store, self.max_queued) >= self.max_queued:
            raise QueueFull(
                f"{self.max_queued} runs already wait (runs.max_queued); try again later"
            )
        run_id = new_run_id()
        mode = RunMode(dry_run, replay, live_reads, self.record_max_result_bytes, mcp, candidate)
        session = self._session(run_id, workflow, kind, payload, mode)
        # A live run of a daemon goes to the shared queue; any other run (a dry run, replay,
        # shadow, MCP session, a run of a folder rather than the registry's workflow, or any
        # run of an embedded host) is this host's from its insert: no other daemon claims
        # it (a claim runs the claimer's registry's version), and no later statement can
        # leave it ownerless.
        registered = workflow is self.registry.get(workflow.name)
        shared = mode.name == "live" and self.node.claims and registered
        self.store.create(
            RunRecord(
                id=run_id,
                workflow=workflow.name,
                workflow_version=workflow.version,
                coordinator=kind,
                trigger=payload,
                status="queued",
                created_at=self.node.now(),
                mode=mode.name,
                source_run=replay.run.id if replay else None,
                rerun_of=rerun_of,
            ),
            owner=None if shared else self.node.id,
        )
        if shared:
            self._start_or_share(session)
        elif mcp:  # an open session starts at once, beside the runs it does not hold up
            self.sessions[session.id] = session
            self._start(session)
        else:
            self._enqueue(session)
        return session

    def _session(
        self, run_id: str, workflow: Workflow, kind: str, payload: Any, mode: RunMode
    ) -> RunSession:
        """A run's session, told of approvals and asking its guards, its workflow version
        kept in the store."""
        session = RunSession(run_id, workflow, kind, payload, self.store, self.plugins, mode)
        session.observer = self.approval_observer
        session.guards = self._guards(session)
        self._keep(workflow)
        return session

    def _keep(self, workflow: Workflow) -> None:
        if workflow.version not in self._kept_versions:
            self.store.keep_version(workflow.version, workflow.name, version_content(workflow))
            self._kept_versions.add(workflow.version)

    def _start_or_share(self, session: RunSession) -> None:
        """A live run: started here at once when this daemon has room and takes it (one
        statement; a limited workflow's cluster-wide count in a short transaction); else it
        waits in the shared queue, for this daemon or any other."""
        if not self.accepting or self._counted() >= self.max_in_flight:
            session.close()
            wakeup.hint(self.store)  # it waits in the shared queue: another daemon may have room
            return
        now = self.node.now()
        workflow = session.workflow
        limit = session.limits.max_in_flight
        lease = self.node.lease_until(now)
        try:
            if limit is None:
                claim = claims.claim_run(
                    self.store, session.id, self.node.id, workflow.version, now, lease
                )
            else:
                claim = claims.claim_next(
                    self.store,
                    self.node.id,
                    {workflow.name: workflow.version},
                    {workflow.name: limit},
                    now,
                    lease,
                    session.id,
                    clock=self.node.now,
                )
        except StoreError as error:  # the run is queued: a daemon claims it once the store is back
            log.warning("run %s waits in the shared queue: %s", session.id, error.message)
            claim = None
        if claim is None:
            session.close()
            wakeup.hint(self.store)
            return
        self._attempts[session.id] = claim.attempt
        self.sessions[session.id] = session
        self._start(session)

    def _claim_queued(self) -> list[str]:
        """Take runs from the shared queue while this daemon has room; the ids taken."""
        taken: list[str] = []
        if not (self.node.claims and self.accepting):
            return taken
        loaded = [s.current for s in self.registry.states() if s.current is not None]
        versions = {w.name: w.version for w in loaded}
        limits = {
            w.name: w.spec.limits.max_in_flight
            for w in loaded
            if w.spec.limits.max_in_flight is not None
        }
        while self._counted() < self.max_in_flight:
            if not claims.any_claimable(self.store, list(versions)):
                break
            now = self.node.now()
            lease = self.node.lease_until(now)
            claim = claims.claim_next(
                self.store, self.node.id, versions, limits, now, lease, clock=self.node.now
            )
            if claim is None:
                break
            record = self.store.get(claim.run_id, events=False)
            assert record is not None
            workflow = self.registry.get(record.workflow)
            assert workflow is not None  # claimed only for a workflow loaded here
            mode = RunMode(record.mode == "dry_run", None, False, self.record_max_result_bytes)
            session = self._session(record.id, workflow, record.coordinator, record.trigger, mode)
            self._attempts[session.id] = claim.attempt
            self.sessions[session.id] = session
            self._start(session)
            taken.append(session.id)
        return taken

    def open_session(self, workflow_name: str, client: dict[str, str]) -> RunSession:
        """A run of `workflow_name` for an MCP session, started at once; its trigger names
        the client. It ends with `close_session` (succeeded) or `cancel`."""
        return self.trigger(workflow_name, {"mcp_client": client}, mcp=True)

    def close_session(self, run_id: str) -> None:
        coordinator = self.coordinators.get("mcp")
        if run_id in self._tasks and isinstance(coordinator, McpCoordinator):
            coordinator.closed(run_id).set()

    def unknown_workflow(self, name: str) -> NotFound:
        """The error for a workflow name the registry does not serve: why it does not load
        when it is there but broken, else the close names."""
        states = self.registry.states()
        broken = next((s for s in states if s.name == name and s.current is None), None)
        if broken is not None and broken.error is not None:
            return NotFound(f"workflow {name!r} does not load: {broken.error}")
        hint = did_you_mean(name, (state.name for state in states))
        return NotFound(f"no workflow named {name!r}{hint}")

    def check_workflow_name(self, name: str) -> None:
        """NotFound for a name that is neither a workflow nor one that ran (a workflow since
        removed still has its runs)."""
        if any(state.name == name for state in self.registry.states()):
            return
        if not self.store.list(RunQuery(workflow=name, limit=1)):
            raise self.unknown_workflow(name)

    # -- admission control -----------------------------------------------------------------

    def _enqueue(self, session: RunSession) -> None:
        self.sessions[session.id] = session
        # After every admission pass each queued run is blocked, by the global limit or
        # its workflow's, and a new run changes neither: only the newcomer may start.
        # So a Trigger costs the same with 1,000 runs waiting as with none.
        if self._may_start(session):
            self._start(session)
        else:
            self._queue.append(session)

    def _admit(self) -> list[str]:
        """Start queued runs, oldest first, while the global and per-workflow limits allow
        (this host's own first, then the shared queue's); a run whose workflow is at its
        own limit lets younger runs of others go ahead. The shared queue's runs taken."""
        if not self.accepting:
            return []
        for session in list(self._queue):
            if self._counted() >= self.max_in_flight:
                return []
            if self._may_start(session):
                self._queue.remove(session)
                self._start(session)
        return self._claim_queued()

    def admit(self) -> list[str]:
        """Take what waits, as when a run ends (the heartbeat's poll, a daemon's start)."""
        return self._admit()

    def keep_only(self, mine: Mapping[str, int]) -> None:
        """`mine`: the runs the store says are this daemon's, with their attempts. A run
        started here that is no longer among them was taken over by another daemon (this
        one missed its lease): its local copy is cancelled, and says why."""
        for run_id, attempt in list(self._attempts.items()):
            task = self._tasks.get(run_id)
            if task is None or run_id in self._taken_over or mine.get(run_id) == attempt:
                continue
            log.warning(
                "run %s: another daemon took it over (this daemon missed its lease);"
                " cancelling this daemon's copy",
                run_id,
            )
            session = self.sessions.get(run_id)
            if session is not None:
                self._lose(session)  # its end and trace are not this daemon's to write
            else:
                self._taken_over.add(run_id)
            task.cancel()

    def _may_start(self, session: RunSession) -> bool:
        limit = session.limits.max_in_flight
        return self._counted() < self.max_in_flight and (
            limit is None or self._in_flight(session.workflow.name) < limit
        )

    def _counted(self) -> int:
        """Runs in flight against `runs.max_in_flight`: an open MCP session is not one (it
        may idle for hours, and holds no process)."""
        return sum(
            1
            for run_id in self._tasks
            if (s := self.sessions.get(run_id)) is None or not s.mode.mcp
        )

    def _in_flight(self, workflow: str) -> int:
        """Counted, not tracked: at most `max_in_flight` runs to look at."""
        return sum(
            1
            for run_id in self._tasks
            if (s := self.sessions.get(run_id)) is not None
            and s.workflow.name == workflow
            and not s.mode.mcp
        )

    def _start(self, session: RunSession) -> None:
        task = asyncio.create_task(self._execute(session), name=f"run-{session.id}")
        task.add_done_callback(lambda done: self._never_started(session, done))
        self._tasks[session.id] = task

    def _never_started(self, session: RunSession, task: asyncio.Task[None]) -> None:
        """A run task cancelled before its first step never ran `_execute`, whose end
        releases the run (its slot, watchers and token): release it here instead. Only while
        the run's task is still this one: a run put back in the queue may have been started
        again, by a new task, before this callback ran."""
        if self._tasks.get(session.id) is task:
            self._finish(
                session, "cancelled", None, "the run was cancelled before it started", None
            )

    def queue_position(self, run_id: str, record: RunRecord | None = None) -> int:
        """1 for the next run to start, 0 for a run not waiting: in this host's own queue,
        or in the shared one (`record`: the run as read already, to spare a read)."""
        for position, session in enumerate(self._queue, 1):
            if session.id == run_id:
                return position
        if record is None:
            record = self.store.get(run_id, events=False)
        if record is None or record.status != "queued":
            return 0
        return claims.queue_position(self.store, record.created_at, record.id)

    def replay(
        self,
        run_id: str,
        coordinator: str | None = None,
        *,
        workflow_path: Path | None = None,
        live_reads: bool = False,
    ) -> RunSession:
        """Run a recorded run's trigger again through the current workflow (or the one in
        `workflow_path`), its tool calls answered from the recording."""
        record = self.record(run_id, kinds=PLAN_KINDS)
        candidate = None
        if workflow_path is not None:
            candidate = self.load_folder(workflow_path)
            if candidate.name != record.workflow:
                raise InvalidArguments(
                    f"{workflow_path} is workflow {candidate.name!r}; run {run_id} is of "
                    f"{record.workflow!r}"
                )
        return self.trigger(
            record.workflow,
            record.trigger,
            coordinator,
            replay=Recording.from_run(record),
            live_reads=live_reads,
            workflow=candidate,
            candidate=candidate is not None,
        )

    def load_folder(self, path: Path) -> Workflow:
        """The workflow in a folder outside the registry (a candidate, a built-in one),
        checked against the tools served."""
        try:
            return load_workflow(path, self.plugins.tool_names())
        except WorkflowError as error:
            raise DefinitionError(str(path), str(error)) from None

    def rerun(self, run_id: str, coordinator: str | None = None) -> RunSession:
        """Run a recorded run's trigger again, live, on the workflow's current version."""
        record = self.record(run_id, events=False)
        return self.trigger(record.workflow, record.trigger, coordinator, rerun_of=record.id)

    def decide(
        self, run_id: str, call: int | None, approved: bool, reason: str, by: str | None = None
    ) -> list[int]:
        """Answer a running run's held call numbered `call` (every held call when None), as
        `tandem approve|deny` do; the numbers answered. NotFound when nothing was waiting."""
        session = self.sessions.get(run_id)
        if session is None:
            raise NotFound(f"run {run_id!r} is not running")
        decided = session.decide(call, approved, reason, by)
        if not decided:
            which = f"call {call}" if call else "any call"
            raise NotFound(f"run {run_id}: {which} is not waiting for approval")
        return decided

    def authenticate(self, token: str) -> RunSession:
        run_id, _, secret = token.partition(".")
        session = self.sessions.get(run_id)
        if session is None or not secret or not session.token_matches(secret):
            raise Unauthenticated("invalid or ended run token")
        return session

    def record(self, run_id: str, *, events: bool = True, kinds: tuple[str, ...] = ()) -> RunRecord:
        """The run as stored (its events of `kinds`, when given); NotFound when there is no
        such run."""
        record = self.store.get(run_id, events=events, kinds=kinds)
        if record is None:
            raise NotFound(f"no run {run_id!r}")
        return record

    def export(self, run_id: str) -> dict[str, Any]:
        """The run as a test fixture; marked exported, so retention keeps it."""
        record = self.record(run_id, kinds=PLAN_KINDS)
        fixture = fixture_of(record, self.store.version_content(record.workflow_version))
        self.store.mark_exported(record.id, time.time())
        return fixture

    def flag(self, run_id: str, reason: str, calls: list[int]) -> None:
        """Flag the run as wrong (`calls`: 0-based indexes of its own calls, as `tandem
        runs show` numbers them from 1); no reason clears the flag."""
        if calls:
            count = len(attempted_plan(self.record(run_id, kinds=PLAN_KINDS)))
            beyond = sorted(n + 1 for n in calls if not 0 <= n < count)
            if beyond:
                raise InvalidArguments(
                    f"run {run_id} has {count} call(s), numbered 1 to {count} by "
                    f"`tandem runs show`: no call {', '.join(map(str, beyond))}"
                )
        if not self.store.flag(run_id, {"reason": reason, "calls": calls} if reason else None):
            raise NotFound(f"no run {run_id!r}")

    async def wait(self, run_id: str) -> RunRecord:
        """The run once it ends, wherever it runs."""
        while True:
            task = self._tasks.get(run_id)
            if task is not None:
                await asyncio.shield(task)
            record = self.record(run_id, events=False)
            if record.status in FINAL:
                return self.record(run_id)
            await asyncio.sleep(REMOTE_POLL_S)

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run of this host, or one waiting in the shared queue;
        False when it is none of these."""
        queued = next((s for s in self._queue if s.id == run_id), None)
        if queued is not None:
            self._queue.remove(queued)
            queued.active = False
            self._finish(queued, "cancelled", None, "the run was cancelled before it started", None)
            return True
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return claims.cancel_queued(self.store, run_id, self.node.now())
        task.cancel()
        return True

    @property
    def executing(self) -> list[str]:
        """The runs this host started, whose leases its heartbeat renews."""
        return list(self._attempts)

    @property
    def active(self) -> int:
        return len(self._tasks)

    @property
    def queued(self) -> int:
        """Runs waiting: this host's own and the shared queue's."""
        return claims.queued(self.store, self.max_queued + 1)

    async def watch(self, run_id: str) -> AsyncIterator[list[Event]]:
        """The run's events so far, then live ones until it ends, in batches: a live batch
        is what the run wrote within WATCH_GATHER_S of its first event, so a busy run
        costs a watcher one message per batch rather than one per event."""
        last = 0
        while (session := self.sessions.get(run_id)) is None:
            # Not here (yet): another daemon's run, or one in the shared queue, read from
            # the store until it ends or this daemon takes it. Its status first: the events
            # read after an end are all the run has.
            ended = self.record(run_id, events=False).status in FINAL  # NotFound: never made
            async for page in self._stored(run_id, last):
                last = page[-1].seq
                yield page
            if ended:
                return
            await asyncio.sleep(REMOTE_POLL_S)
        queue = session.subscribe()
        try:
            async for page in self._stored(run_id, last):
                last = page[-1].seq
                yield page
            ended = False
            while not ended:
                first = await queue.get()
                if first is None:
                    break
                await asyncio.sleep(WATCH_GATHER_S)
                batch = [first]
                while not queue.empty():
                    event = queue.get_nowait()
                    if event is None:
                        ended = True
                        break
                    batch.append(event)
                fresh = [event for event in batch if event.seq > last]
                if fresh:
                    last = fresh[-1].seq
                    yield fresh
        finally:
            session.unsubscribe(queue)

    async def _stored(self, run_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """The run's stored events after seq `after`, a page at a time (none: no page)."""
        more = True
        while more:
            page, more = self.store.events_page(run_id, after, WATCH_PAGE_CHARS)
            if not page:
                return
            after = page[-1].seq
            yield page

    async def shutdown(self, grace: float) -> None:
        """Take no new runs; give the ones in flight `grace` seconds, then cancel them.
        Queued runs stay queued in the store, for another daemon or the next one."""
        self.accepting = False
        for session in self._queue:
            session.close()  # their watchers end; the store keeps them queued
            self.sessions.pop(session.id, None)
        self._queue.clear()
        tasks = list(self._tasks.values())
        if tasks:
            waiting = ", ".join(f"{s.id} ({s.workflow.name})" for s in self.sessions.values())
            log.info("waiting up to %gs for %d run(s): %s", grace, len(tasks), waiting)
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _execute(self, session: RunSession) -> None:
        status, output, error, details = "failed", None, None, None
        if session.id not in self._attempts:  # one of this host's own: it starts it now
            now = self.node.now()
            most = None if session.mode.mcp else session.limits.max_in_flight
            try:
                attempt = claims.start_owned(
                    self.store,
                    session.id,
                    self.node.id,
                    now,
                    self.node.lease_until(now),
                    workflow=session.workflow.name,
                    limit=most,
                )
            except StoreError as failure:  # its end is kept, to write once the store takes it
                self._finish(session, "failed", None, failure.message, None)
                return
            if attempt == claims.FULL:  # other daemons' runs fill the workflow's limit
                log.debug("run %s waits: %s is at its limit", session.id, session.workflow.name)
                del self._tasks[session.id]
                if not self.accepting:  # shutdown() emptied the queue: left queued in the store
                    session.close()
                    self.sessions.pop(session.id, None)
                    return
                self._queue.appendleft(session)  # retried by the next admission pass
                return
            if attempt is None:
                log.warning("run %s: no longer this host's to start", session.id)
                self._release(session)
                return
            self._attempts[session.id] = attempt
        try:
            mode = session.mode
            session.emit(
                "run.started",
                workflow=session.workflow.name,
                version=session.workflow.version,
                coordinator=session.coordinator,
                mode=mode.name,
                **({"source_run": mode.recording.run.id} if mode.recording else {}),
                raw={"trigger": session.trigger},
            )
            # An MCP session may idle for hours: no wall-clock limit, each call has its own.
            limit = None if mode.mcp else session.limits.timeout_s
            session.deadline = None if limit is None else time.monotonic() + limit
            async with asyncio.timeout(limit):
                try:
                    output = await self.coordinators[session.coordinator].run(session)
                except Escalated as escalation:  # the same run goes on with the model
                    output = await hand_over(session, escalation, self.coordinators, self.store)
            status = "succeeded"
            if session.limit_error is not None:
                status, error = "failed", session.limit_error.message
        except TimeoutError:
            status, error = (
                "timed_out",
                f"the run exceeded its timeout of {session.limits.timeout_s:g}s",
            )
        except asyncio.CancelledError:
            status, error = "cancelled", "the run was cancelled"
        except RunFailed as failure:
            error, details = failure.message, failure.details
            if session.limit_error is not None and not isinstance(failure, LimitReached):
                error = f"{session.limit_error.message}; then: {error}"
        except Exception as failure:  # a host bug, or a store that cannot write: still finish
            log.exception("run %s failed in the host", session.id)
            error = f"internal error: {type(failure).__name__}: {failure}"
        finally:
            session.active = False  # the token dies with the run, before anything else
            if session.guards is not None:
                await session.guards.close()
            self._finish(session, status, output, error, details)

    def _guards(self, session: RunSession) -> RunGuards | None:
        """The run's guards, run in the sandbox the script coordinator launches."""
        from .coordinators.script import ScriptCoordinator  # it imports ToolHost, which us

        scripts = self.coordinators.get("script")
        return guards_for(session, scripts if isinstance(scripts, ScriptCoordinator) else None)

    def _finish(
        self, session: RunSession, status: str, output: Any, error: str | None, details: Any
    ) -> None:
        """Record the end, then release the run whatever the recording did: its watchers
        always see the end; an end the store cannot write yet (a full disk) it writes with
        its next statement that gets through, and shows meanwhile (a host that stops
        before then leaves the run for the next one to mark interrupted)."""
        attempt = self._attempts.get(session.id, 0)
        if session.id not in self._taken_over and not self._holds(session.id, attempt):
            log.warning(
                "run %s: another daemon took it over; this host's end (%s) is not written",
                session.id,
                status,
            )
            self._lose(session)
        if session.id in self._taken_over:  # the end another daemon wrote stands
            self._taken_over.discard(session.id)
        else:
            try:
                if (dropped := session.budget.dropped()) is not None:
                    session.emit("trace.dropped", **dropped)
                session.emit("run.finished", status=status, error=error, details=details)
                self._write_end(session, attempt, status, output, error)
            except Exception:  # the store keeps an end it cannot write yet: this is a bug
                log.exception("run %s: could not record that it %s", session.id, status)
        self._release(session)
        log.info("run %s %s: %s", session.id, session.workflow.name, status)
        self._admit()  # first: a shadow queued by _after then waits its turn behind them
        self._after(session)

    def _holds(self, run_id: str, attempt: int) -> bool:
        """Whether the run is still this host's attempt; a store that cannot say keeps the
        end, fenced, to write later."""
        try:
            return self.store.holds(run_id, self.node.id, attempt)
        except StoreError:
            return True

    def _lose(self, session: RunSession) -> None:
        """Another daemon took the run over: its trace and end are no longer this copy's."""
        self._taken_over.add(session.id)
        session.traced = False
        self.store.drop_events(session.id)

    def _write_end(
        self, session: RunSession, attempt: int, status: str, output: Any, error: str | None
    ) -> None:
        """The end, fenced by this host's attempt; one the store cannot take now it keeps,
        to write with its next statement that gets through."""
        end = (status, output, error, session.usage, self.node.now())
        try:
            written = claims.finish(self.store, session.id, self.node.id, attempt, end)
        except StoreError:
            self.store.finish(session.id, *end, fence=(self.node.id, attempt))
            return
        if not written:
            log.warning(
                "run %s: its end (%s) was refused: another daemon took the run over",
                session.id,
                status,
            )

    def _release(self, session: RunSession) -> None:
        session.close()
        self.sessions.pop(session.id, None)
        self._tasks.pop(session.id, None)
        self._attempts.pop(session.id, None)

    def _after(self, session: RunSession) -> None:
        """Shadows: start one when a live run of a shadowed workflow ends (so it never
        delays the run), and keep a shadow's plan diff when it ends. Never raises: a shadow
        must not fail the run it shadows."""
        try:
            if session.mode.name == "live" and session.workflow.spec.shadow and self.accepting:
                self._start_shadow(session)
            elif session.mode.name == "shadow":
                self._compare_shadow(session)
        except Exception:
            log.exception("run %s: shadow bookkeeping failed", session.id)

    def _start_shadow(self, primary: RunSession) -> None:
        record = self.store.get(primary.id, kinds=PLAN_KINDS)
        assert record is not None
        if primary.workflow.spec.shadow == "llm" and self.skip_llm_shadows is not None:
            self._skip_shadow(primary, record, self.skip_llm_shadows)
            return
        shadow = self.trigger(
            primary.workflow.name,
            record.trigger,
            primary.workflow.spec.shadow,
            dry_run=True,
            replay=Recording.from_run(record),
            live_reads=True,
            workflow=primary.workflow,  # the version the primary ran
        )
        log.info("run %s: shadow %s (%s)", primary.id, shadow.id, shadow.coordinator)

    def _skip_shadow(self, primary: RunSession, record: RunRecord, why: str) -> None:
        """A shadow that never ran, kept so `tandem shadow` says why."""
        run_id, now = new_run_id(), self.node.now()
        self.store.create(
            RunRecord(
                id=run_id,
                workflow=primary.workflow.name,
                workflow_version=primary.workflow.version,
                coordinator="llm",
                trigger=record.trigger,
                status="queued",
                created_at=now,
                mode="shadow",
                source_run=primary.id,
            )
        )
        usage = dict.fromkeys(USAGE_KEYS, 0)
        self.store.finish(run_id, "cancelled", None, f"skipped: {why}", usage, now)
        self.store.set_plan_diff(run_id, {"primary": primary.id, "skipped": why})
        log.info("run %s: shadow %s skipped: %s", primary.id, run_id, why)

    async def settle_shadows(self) -> None:
        """Wait until no shadow is queued or running: a host that stops once its command's
        run ended (an embedded one) would cancel them."""
        while any(s.mode.name == "shadow" for s in self.sessions.values()) and self._tasks:
            await asyncio.wait(list(self._tasks.values()), return_when=asyncio.FIRST_COMPLETED)

    def _compare_shadow(self, shadow: RunSession) -> None:
        recording = shadow.mode.recording
        assert recording is not None
        record = self.store.get(shadow.id, kinds=PLAN_KINDS)
        assert record is not None
        diff = recording.diff(record)
        self.store.set_plan_diff(
            shadow.id,
            {
                "primary": recording.run.id,
                "agree": diff.agrees(),
                "summary": diff.summary(),
                "entries": diff.to_json(),
            },
        )
