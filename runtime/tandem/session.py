"""A run in progress: its token, its scope, its limits, and the trace the host writes.

Every tool call of every coordinator passes through `RunSession.call_tool`, so scope,
argument validation, limits and tracing are the same for a script and for the model.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tandem_sdk.errors import (
    GuardRefused,
    InterfaceError,
    InvalidArguments,
    LimitExceeded,
    NotFound,
    ToolError,
    ToolNotInScope,
)
from tandem_sdk.plan import canonical, in_plan

from .approvals import ApprovalObserver, Approvals
from .config import DEFAULT_RECORD_MAX_RESULT_BYTES
from .files_tools import FILE_TOOL_NAMES, file_tools
from .guards import GuardTurn
from .plugins import PluginManager
from .replay.answers import replayed_answer
from .replay.recording import RecordedCall, Recording
from .store import USAGE_KEYS, Event, RunStore
from .suggest import did_you_mean
from .tools import HostTool
from .trace_budget import TraceBudget
from .workflows import Workflow
from .workflows.paths import UnsafePath, normalise_virtual_path

if TYPE_CHECKING:
    from .guards import Refusal, RunGuards

log = logging.getLogger(__name__)

# A single event's data is cut beyond this, so one huge tool result cannot bloat the store.
MAX_EVENT_VALUE_CHARS = 64 * 1024
# A guard sees results whole up to this size whatever the recording's cap: a run that
# records little must not leave its guards blind to what it read.
GUARD_RESULT_BYTES = DEFAULT_RECORD_MAX_RESULT_BYTES


@dataclass(frozen=True)
class ToolOutcome:
    result_json: str | None = None
    error: ToolError | None = None


@dataclass(frozen=True)
class RunMode:
    """How a run's tool calls are answered. The host decides, never the coordinator:

    - live: every call reaches its plugin;
    - dry run: read-only tools run, every other call is planned and answered with the
      tool's dry-run result;
    - replay: calls are answered from `recording`; an unrecorded read-only call runs live
      only with `live_reads`; a tool with side effects never runs.
    - shadow (a replay that is also a dry run): as a replay, reads run live when not
      recorded, and an unrecorded call with side effects is planned.
    - mcp: an MCP session (`tandem mcp serve`); every call reaches its plugin, as live,
      and the session has no wall-clock limit of its own (each call has `timeout_s`).

    `candidate`: a replay through a folder other than the workflow's (a rewrite's
    validation, `tandem replay --workflow`).
    """

    dry_run: bool = False
    recording: Recording | None = None
    live_reads: bool = False
    max_result_bytes: int = DEFAULT_RECORD_MAX_RESULT_BYTES
    mcp: bool = False
    candidate: bool = False

    @property
    def name(self) -> str:
        if self.mcp:
            return "mcp"
        if self.recording is not None:
            return "shadow" if self.dry_run else "replay"
        return "dry_run" if self.dry_run else "live"


class RunSession:
    def __init__(
        self,
        run_id: str,
        workflow: Workflow,
        coordinator: str,
        trigger: Any,
        store: RunStore,
        plugins: PluginManager,
        mode: RunMode | None = None,
    ) -> None:
        self.id = run_id
        self.mode = mode or RunMode()
        # Ids of the subagents running now: a tool call may carry one only while it runs.
        self.subagents: set[str] = set()
        self.held = Approvals(self, store)  # calls waiting for a person's decision
        self.observer: ApprovalObserver | None = None
        self.guards: RunGuards | None = None  # asked before each call (tandem.guards)
        # The run's own calls so far, numbered as `tandem runs show` numbers them.
        self._calls_numbered = 0
        self.workflow = workflow
        self.coordinator = coordinator
        self.trigger = trigger
        self.limits = workflow.spec.limits
        self._secret = secrets.token_urlsafe(32)
        self.token = f"{run_id}.{self._secret}"
        self.active = True
        self.tool_calls = 0
        self.deadline: float | None = None  # monotonic; set when the run starts
        self.limit_error: LimitExceeded | None = None
        self.budget = TraceBudget(self.limits.max_log_lines, self.limits.max_log_bytes)
        self.usage: dict[str, int] = dict.fromkeys(USAGE_KEYS, 0)
        self._store = store
        self._plugins = plugins
        self._seq = 0
        # False once another daemon took the run over: the trace is its now, not this copy's.
        self.traced = True
        self._watchers: list[asyncio.Queue[Event | None]] = []
        self.finished = asyncio.Event()

    def token_matches(self, secret: str) -> bool:
        return self.active and hmac.compare_digest(secret.encode(), self._secret.encode())

    # -- trace -----------------------------------------------------------------------------

    def emit(self, kind: str, *, raw: dict[str, Any] | None = None, **data: Any) -> Event:
        """Write an event. `data` values are capped so a trace stays small; `raw` ones are
        kept whole (tool arguments and results, already bounded, that replay relies on)."""
        self._seq += 1
        event = Event(self._seq, time.time(), kind, {**_capped(data), **(raw or {})})
        if self.traced:
            self._store.append_event(self.id, event)
        for queue in self._watchers:
            queue.put_nowait(event)
        return event

    def log(self, level: str, message: str, fields: Any) -> None:
        """A log line from the coordinator, written while the run's log limits allow."""
        data = _capped({"level": level, "message": message, "fields": fields})
        if self.budget.take_log(len(json.dumps(data, default=str))):
            self.emit("log", raw=data)  # capped once already

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._watchers.append(queue)
        if self.finished.is_set():
            queue.put_nowait(None)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        if queue in self._watchers:
            self._watchers.remove(queue)

    def close(self) -> None:
        """Revoke the token and end every watcher's stream."""
        self.active = False
        self.finished.set()
        for queue in self._watchers:
            queue.put_nowait(None)

    # -- tools -----------------------------------------------------------------------------

    def tools_in_scope(self) -> list[HostTool]:
        return tools_in_scope(self._plugins, self.workflow)

    def resolve_tool(self, name: str) -> HostTool:
        if self.workflow.files and name in FILE_TOOL_NAMES:
            return file_tools()[name]
        try:
            tool, _ = self._plugins.resolve(name)
        except NotFound as error:  # nobody provides it: name the tools this run may call
            hint = did_you_mean(name, (t.name for t in self.tools_in_scope()))
            raise NotFound(error.message + hint, tool=name, run_id=self.id) from None
        if not self.workflow.in_scope(name):
            raise ToolNotInScope(
                f"tool {name!r} is not in the scope of workflow {self.workflow.name!r}",
                tool=name,
                run_id=self.id,
            )
        return tool

    async def call_tool(
        self, name: str, arguments_json: str, *, subagent: str | None = None
    ) -> ToolOutcome:
        """Check limits, scope and arguments, answer as the run's mode says, trace it all.
        A refused call (unknown, out of scope, bad arguments) counts as a call: a run cannot
        make them without end; past the limit only the first refusal is traced."""
        try:
            self._count_call(name)
            tool = self.resolve_tool(name)
            arguments = tool.parse_arguments(arguments_json)
        except InterfaceError as error:
            error.run_id = self.id
            if not isinstance(error, LimitExceeded) or self.budget.calls_past_limit <= 1:
                self.emit(
                    "tool.refused", tool=name, error=type(error).__name__, message=error.message
                )
            raise
        tagged: dict[str, Any] = {"subagent": subagent} if subagent in self.subagents else {}
        turn = GuardTurn(self.guards, name)
        try:
            return await self._guarded_call(name, tool, arguments, arguments_json, tagged, turn)
        finally:
            turn.give()

    async def _guarded_call(
        self,
        name: str,
        tool: HostTool,
        arguments: dict[str, Any],
        arguments_json: str,
        tagged: dict[str, Any],
        turn: GuardTurn,
    ) -> ToolOutcome:
        """The call once in scope: its guard asked (and asked again after an approval),
        then answered as the run's mode says."""
        if (refusal := await turn.ask(arguments)) is not None:
            return self._refused(name, arguments, tagged, refusal)
        source, recorded = self._source(tool, arguments)
        if (version := self._plugins.version_of(tool.provider)) is not None:
            tagged["plugin_version"] = version  # which code served it: a trace names it
        call = self.emit(
            "tool.call",
            tool=name,
            executed=source == "plugin",
            source=source,
            **tagged,
            raw={"arguments": arguments},
        )
        number = None
        if "subagent" not in tagged and in_plan(name):
            self._calls_numbered += 1
            number = self._calls_numbered
        started = time.perf_counter()
        closing: dict[str, Any] = {"call": call.seq, "tool": name, "executed": source == "plugin"}
        try:
            if source == "plugin" and self._needs_approval(tool, tagged.get("subagent")):
                turn.give()  # other guarded calls go on while a person decides
                await self.held.hold(call.seq, number, tool.name, arguments)
                if (refusal := await turn.ask(arguments)) is not None:
                    return self._refused(name, arguments, tagged, refusal, call=call.seq)
            result_json = await self._answer(source, recorded, tool, arguments, arguments_json)
        except ToolError as error:
            self.emit(
                "tool.result",
                **closing,
                ok=False,
                error_type=error.type,
                message=error.reason,
                retryable=error.retryable,
                duration_ms=_ms(started),
            )
            self._remember(name, arguments, error=error)
            return ToolOutcome(error=error)
        except InterfaceError as error:
            error.run_id = self.id
            self.emit(
                "tool.result",
                **closing,
                ok=False,
                error_type=type(error).__name__,
                message=error.message,
                retryable=error.retryable,
                duration_ms=_ms(started),
            )
            raise
        except asyncio.CancelledError:
            # The caller went away (or the run ended): the trace still closes the call.
            self.emit(
                "tool.result",
                **closing,
                ok=False,
                error_type="Cancelled",
                message="the call was cancelled before the tool answered",
                duration_ms=_ms(started),
            )
            raise
        kept = self._kept_result(result_json)
        self.emit("tool.result", **closing, ok=True, duration_ms=_ms(started), raw=kept)
        if self.guards is not None:  # decoded again only when the trace cut it
            seen = kept if "result" in kept else self._kept_result(result_json, GUARD_RESULT_BYTES)
            self._remember(name, arguments, kept=seen)
        return ToolOutcome(result_json=result_json)

    def _refused(
        self,
        name: str,
        arguments: dict[str, Any],
        tagged: dict[str, Any],
        refusal: Refusal,
        call: int | None = None,
    ) -> ToolOutcome:
        """A call its guard refused: traced as a call never made, answered as a tool error
        the coordinator sees (the model reads the reason; a script raises GuardRefused).
        `call` is the seq of its tool.call when it was refused after an approval."""
        if call is None:
            call = self.emit(
                "tool.call",
                tool=name,
                executed=False,
                source="guard",
                **tagged,
                raw={"arguments": arguments},
            ).seq
            if "subagent" not in tagged and in_plan(name):
                self._calls_numbered += 1  # numbered in the trace as any call is
        guard, reason = refusal.guard, refusal.reason
        self.emit("guard.refused", call=call, guard=guard, tool=name, reason=reason)
        error = GuardRefused(refusal.message, tool=name)
        self.emit(
            "tool.result",
            call=call,
            tool=name,
            executed=False,
            ok=False,
            error_type=error.type,
            message=error.reason,
            refused=guard,
            duration_ms=0.0,
        )
        self._remember(name, arguments, error=error, refused=reason)
        return ToolOutcome(error=error)

    def _remember(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        kept: dict[str, Any] | None = None,
        error: ToolError | None = None,
        refused: str | None = None,
    ) -> None:
        """The call and its answer (and the reason a guard refused it), for the guards of
        later calls."""
        if self.guards is None:
            return
        if error is not None:
            failure = {"type": error.type, "message": error.reason}
            self.guards.record(name, arguments, error=failure, refused=refused)
        else:
            self.guards.record(name, arguments, kept=kept)

    def _needs_approval(self, tool: HostTool, subagent: str | None) -> bool:
        # An MCP client is a model: its calls are held as the LLM coordinator's are.
        model = self.coordinator in ("llm", "mcp") or subagent in self.subagents
        acting = "llm" if model else "script"
        annotations = tool.annotations
        return self.workflow.spec.approvals.required(
            acting, tool.name, annotations.destructive, annotations.read_only
        )

    @property
    def approvals(self) -> dict[int, asyncio.Future[tuple[bool, str]]]:
        """The calls waiting for a person's decision, by their tool.call event's seq."""
        return self.held.waiting

    def decide(
        self, number: int | None, approved: bool, reason: str, by: str | None = None
    ) -> list[int]:
        """Answer the waiting call numbered `number` in the trace (see Approvals.decide)."""
        return self.held.decide(number, approved, reason, by)

    def decide_held(self, seq: int, approved: bool, reason: str, by: str | None = None) -> bool:
        """Answer the call held at tool.call `seq` (see Approvals.decide_held)."""
        return self.held.decide_held(seq, approved, reason, by)

    def _source(self, tool: HostTool, arguments: dict[str, Any]) -> tuple[str, RecordedCall | None]:
        """Who answers: "plugin" (the call runs), "planned" (a dry run's stand-in),
        "recording" (a replay's recorded answer) or "unrecorded" (a replay has none)."""
        mode = self.mode
        if tool.provider == "files":
            return "plugin", None  # the workflow's own files: inputs, served as recorded
        if mode.recording is not None:
            recorded = mode.recording.take(tool.name, arguments)
            if recorded is not None:
                return "recording", recorded
            if mode.live_reads and tool.annotations.read_only:
                return "plugin", None
            return ("planned" if mode.dry_run else "unrecorded"), None
        if mode.dry_run and not tool.annotations.read_only:
            return "planned", None
        return "plugin", None

    async def _answer(
        self,
        source: str,
        recorded: RecordedCall | None,
        tool: HostTool,
        arguments: dict[str, Any],
        arguments_json: str,
    ) -> str:
        if source == "planned":
            return tool.dry_run_result(arguments)
        if source == "recording" and recorded is not None:
            return replayed_answer(recorded)
        if source == "unrecorded":
            hint = " (read-only: --live-reads would run it)" if tool.annotations.read_only else ""
            raise ToolError(
                f"{tool.name}({canonical(arguments)}) has no recorded answer in run "
                f"{self.mode.recording.run.id if self.mode.recording else '?'}{hint}",
                tool=tool.name,
                type="not_recorded",
            )
        return await self._dispatch(tool, arguments, arguments_json)

    def _kept_result(self, result_json: str, at_least: int = 0) -> dict[str, Any]:
        """The result as kept: whole up to the recording's cap (or `at_least` bytes)."""
        size = len(result_json.encode())
        if size > max(self.mode.max_result_bytes, at_least):
            return {"result_over_cap": size}
        return {"result": json.loads(result_json)}

    async def _dispatch(
        self, tool: HostTool, arguments: dict[str, Any], arguments_json: str
    ) -> str:
        if tool.provider == "files":
            if tool.name == "files.list":
                return json.dumps(self.list_files())
            return json.dumps(self.read_file(str(arguments["path"])).decode("utf-8", "replace"))
        _, plugin = self._plugins.resolve(tool.name)
        bare = tool.name.partition(".")[2]
        time_left = None if self.deadline is None else self.deadline - time.monotonic()
        return await plugin.invoke(
            bare, arguments_json, self.id, self.workflow.name, time_left_s=time_left
        )

    def _count_call(self, name: str) -> None:
        if self.tool_calls >= self.limits.max_tool_calls:
            self.budget.call_past_limit()
            self.limit_error = LimitExceeded(
                f"run {self.id} reached max_tool_calls ({self.limits.max_tool_calls})",
                tool=name,
                run_id=self.id,
            )
            raise self.limit_error
        self.tool_calls += 1

    # -- virtual files ---------------------------------------------------------------------

    def list_files(self) -> list[str]:
        return sorted(self.workflow.files)

    def read_file(self, path: str) -> bytes:
        try:
            key = normalise_virtual_path(path)
        except UnsafePath as error:
            raise InvalidArguments(f"virtual file path rejected: {error}", run_id=self.id) from None
        if key not in self.workflow.files:
            raise NotFound(f"workflow {self.workflow.name!r} has no file {path!r}", run_id=self.id)
        return self.workflow.files[key]


def tools_in_scope(plugins: PluginManager, workflow: Workflow) -> list[HostTool]:
    """The tools a run of `workflow` may call: its plugins' in scope, and the file tools
    when it declares files."""
    tools = [t for t in plugins.tools() if workflow.in_scope(t.name)]
    if workflow.files:
        tools.extend(file_tools().values())
    return tools


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _capped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_EVENT_VALUE_CHARS:
        return (
            value[:MAX_EVENT_VALUE_CHARS] + f"... [{len(value) - MAX_EVENT_VALUE_CHARS} chars cut]"
        )
    if isinstance(value, dict):
        return {k: _capped(v) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > 1000:
            return [_capped(v) for v in value[:1000]] + [f"... [{len(value) - 1000} items cut]"]
        return [_capped(v) for v in value]
    return value
