"""Test a script against recorded runs, offline: `assert_replays("script.py", "run.json")`.

`tandem runs export RUN_ID DIR` writes a run as a fixture (version 1). A replay calls the
script's handler with the recorded trigger and proxies that answer from the recording;
no tool ever runs. A tool call matches a recorded call with the same tool and canonical
arguments, identical calls taking the recorded answers in order; a recorded error is
raised again as ToolError. A call the recording cannot answer raises ToolError type
"not_recorded" ("result_not_recorded" when the recorded result was over the recording
cap), which the script may catch like any tool failure. Virtual files come from the
fixture; subagent calls match on their whole request as the host records it.

A flagged fixture is a regression test: a person marked some recorded calls wrong, and
the script passes when it makes the other calls and not the flagged ones. A call a person
denied in an approval (recorded error type `denied`) is wrong the same way: leaving it out
agrees. The rule is `tandem_sdk.plan.diff_plans`, the one `tandem replay` uses.

No pytest import: failures are AssertionErrors whose message is meant to be read.
"""

from __future__ import annotations

import copy
import importlib
import json
import posixpath
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ._convert import SubagentResult, ToolInfo, subagent_request
from .client import ToolHostClient
from .errors import GuardRefused, NotFound, SubagentError, ToolError
from .plan import PlanDiff, PlannedCall, canonical, diff_plans, in_plan, wrong_calls
from .runner import load_handler
from .script import Subagent, Tools, VirtualFiles

__all__ = ["Fixture", "FixtureRun", "assert_replays", "load_fixture", "replay_fixture"]

FIXTURE_VERSION = 1
_REQUIRED: Any = object()


@dataclass(frozen=True)
class RecordedError:
    type: str
    message: str
    retryable: bool = False


@dataclass(frozen=True)
class RecordedCall:
    tool: str
    arguments: dict[str, Any]
    result: Any = None
    error: RecordedError | None = None
    result_over_cap: int | None = None  # the result's size, when too big to be recorded

    @property
    def planned(self) -> PlannedCall:
        return PlannedCall(self.tool, self.arguments)


@dataclass(frozen=True)
class RecordedSubagentCall:
    request: dict[str, Any]  # prompt, input, schema, tools, model
    text: str = ""
    output: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Flag:
    reason: str
    calls: tuple[int, ...]  # indexes into Fixture.calls


@dataclass(frozen=True)
class Fixture:
    name: str  # the file's name, for messages
    run: str
    workflow: str
    workflow_version: str
    coordinator: str
    status: str
    trigger: Any
    files: dict[str, str]
    calls: tuple[RecordedCall, ...]
    subagent_calls: tuple[RecordedSubagentCall, ...]
    output: Any
    flagged: Flag | None = None

    def plan(self, *, without_flagged: bool = False) -> list[PlannedCall]:
        wrong = set(self.wrong) if without_flagged else set()
        return [call.planned for i, call in enumerate(self.calls) if i not in wrong]

    @property
    def wrong(self) -> list[int]:
        """The calls a person flagged or denied: a replay must not make them again."""
        flagged = self.flagged.calls if self.flagged else ()
        return wrong_calls(flagged, [c.error.type if c.error else None for c in self.calls])


def _kind(value: Any) -> str:
    kinds: list[tuple[type, str]] = [(bool, "boolean"), (int, "integer"), (float, "number")]
    kinds += [(str, "string"), (list, "array"), (dict, "object"), (type(None), "null")]
    return next((name for t, name in kinds if isinstance(value, t)), type(value).__name__)


class _Fields:
    """One object of a fixture, read field by field; each error names the file and field."""

    def __init__(self, source: str, where: str, value: Any) -> None:
        self.source, self.where, self.value = source, where, value
        if not isinstance(value, dict):
            raise self.malformed("", f"expected object, got {_kind(value)}")

    def malformed(self, key: str, problem: str) -> ValueError:
        field = ".".join(part for part in (self.where, key) if part) or "(top level)"
        return ValueError(f"{self.source}: {field}: {problem}")

    def get(self, key: str, kinds: str = "", default: Any = _REQUIRED) -> Any:
        if key not in self.value:
            if default is _REQUIRED:
                raise self.malformed(key, "missing")
            return default
        if kinds and _kind(self.value[key]) not in kinds.split("|"):
            raise self.malformed(key, f"expected {kinds}, got {_kind(self.value[key])}")
        return self.value[key]

    def items(self, key: str, default: Any = _REQUIRED) -> list[_Fields]:
        where = f"{self.where}.{key}" if self.where else key
        found = self.get(key, "array", default)
        return [_Fields(self.source, f"{where}[{i}]", item) for i, item in enumerate(found)]

    def child(self, key: str) -> _Fields:
        return _Fields(self.source, f"{self.where}.{key}" if self.where else key, self.get(key))


def load_fixture(path: str | Path) -> Fixture:
    """Read a fixture file; a malformed one is a ValueError naming the file and field."""
    path = Path(path)
    try:
        top = _Fields(str(path), "", json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a JSON document: {error}") from None
    if (version := top.get("fixture", "integer")) != FIXTURE_VERSION:
        message = f"version {version} is unknown; this tandem_sdk reads {FIXTURE_VERSION}"
        raise top.malformed("fixture", message)
    files = top.get("files", "object", {})
    for virtual_path, text in files.items():
        if not isinstance(text, str):
            raise top.malformed(f"files.{virtual_path}", f"expected string, got {_kind(text)}")
    calls = tuple(_recorded_call(fields) for fields in top.items("calls"))
    flagged = None
    if top.get("flagged", "object|null", None) is not None:
        flag = top.child("flagged")
        indexes = flag.get("calls", "array")
        for index in indexes:
            if _kind(index) != "integer" or not 0 <= index < len(calls):
                raise flag.malformed("calls", f"{index!r} is not an index into calls")
        flagged = Flag(flag.get("reason", "string", ""), tuple(indexes))
    return Fixture(
        name=path.name,
        run=top.get("run", "string", ""),
        workflow=top.get("workflow", "string", ""),
        workflow_version=top.get("workflow_version", "string", ""),
        coordinator=top.get("coordinator", "string", ""),
        status=top.get("status", "string", ""),
        trigger=top.get("trigger", "", None),
        files=files,
        calls=calls,
        subagent_calls=tuple(_recorded_subagent(f) for f in top.items("subagent_calls", [])),
        output=top.get("output", "", None),
        flagged=flagged,
    )


def _recorded_call(fields: _Fields) -> RecordedCall:
    outcomes = [key for key in ("result", "error", "result_over_cap") if key in fields.value]
    if len(outcomes) != 1:
        raise fields.malformed("", f"needs one of result, error, result_over_cap; has {outcomes}")
    error = None
    if "error" in fields.value:
        e = fields.child("error")
        retryable = e.get("retryable", "boolean", False)
        error = RecordedError(e.get("type", "string"), e.get("message", "string"), retryable)
    return RecordedCall(
        tool=fields.get("tool", "string"),
        arguments=fields.get("arguments", "object", {}),
        result=fields.value.get("result"),
        error=error,
        result_over_cap=fields.get("result_over_cap", "integer", None),
    )


def _recorded_subagent(fields: _Fields) -> RecordedSubagentCall:
    r = fields.child("request")
    request = {
        "prompt": r.get("prompt", "string"),
        "input": r.get("input", "", None),
        "schema": r.get("schema", "", None),
        "tools": r.get("tools", "array|null", None) or [],
        "model": r.get("model", "string|null", None) or None,
    }
    if "error" in fields.value:
        return RecordedSubagentCall(request, error=fields.get("error", "string"))
    return RecordedSubagentCall(
        request, fields.get("text", "string", ""), fields.get("output", "", None)
    )


class _ReplayClient:
    """What the script's proxies call (ToolHostClient's methods), answered from a fixture."""

    def __init__(self, fixture: Fixture) -> None:
        self.fixture = fixture
        self.calls: list[PlannedCall] = []
        self.unanswered: list[PlannedCall] = []
        self.logs: list[dict[str, Any]] = []
        self._answers: dict[tuple[str, str], list[RecordedCall]] = {}
        for recorded in fixture.calls:
            self._answers.setdefault(recorded.planned.key, []).append(recorded)
        self._subagents = list(fixture.subagent_calls)

    def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        call = PlannedCall(name, json.loads(json.dumps(arguments)))  # as the host gets them
        if not in_plan(name):  # files.list and files.read: the model's way to the files
            if name == "files.list":
                return self.list_files()
            return self.read_file(str(call.arguments.get("path", ""))).decode("utf-8", "replace")
        self.calls.append(call)
        if not (answers := self._answers.get(call.key)):
            self.unanswered.append(call)
            used = call.key in self._answers
            why = "its recorded answers are used up" if used else "no recorded call matches"
            message = f"{call} is not recorded in {self.fixture.name} ({why}); no tool runs"
            raise ToolError(message, tool=name, type="not_recorded")
        recorded = answers.pop(0)
        if (e := recorded.error) is not None and e.type == GuardRefused.TYPE:
            raise GuardRefused(e.message, tool=name)  # as the host answers a refused call
        if e is not None:
            raise ToolError(e.message, tool=name, type=e.type, retryable=e.retryable)
        if recorded.result_over_cap is not None:
            over = f"{recorded.result_over_cap} bytes, over the recording cap"
            why = f"has no result in {self.fixture.name}: it was {over}"
            raise ToolError(f"{call} {why}", tool=name, type="result_not_recorded")
        return copy.deepcopy(recorded.result)

    def list_tools(self) -> list[ToolInfo]:
        """The recorded tools; a fixture holds no descriptions or schemas."""
        names = dict.fromkeys(recorded.tool for recorded in self.fixture.calls)
        return [ToolInfo(name, "", {"type": "object"}) for name in names]

    def list_files(self) -> list[str]:
        return sorted(self.fixture.files)

    def read_file(self, path: str) -> bytes:
        if (key := posixpath.normpath(path or ".")) not in self.fixture.files:
            raise NotFound(f"workflow {self.fixture.workflow!r} has no file {path!r}")
        return self.fixture.files[key].encode("utf-8")

    def log(self, level: str, message: str, fields: dict[str, Any] | None = None) -> None:
        self.logs.append({"level": level or "info", "message": message, "fields": fields or {}})

    def subagent(
        self,
        prompt: str,
        input: Any = None,
        schema: dict[str, Any] | None = None,
        tools: Sequence[str] | None = None,
        model: str | None = None,
    ) -> SubagentResult:
        wire = subagent_request(prompt, input, schema, tools, model)  # checks as the client does
        request = {  # decoded as ToolHost decodes and records it
            "prompt": wire.prompt,
            "input": json.loads(wire.input_json) if wire.input_json else None,
            "schema": json.loads(wire.output_schema_json) if wire.output_schema_json else None,
            "tools": list(wire.tools),
            "model": wire.model or None,
        }
        key = canonical(request)
        recorded = next((r for r in self._subagents if canonical(r.request) == key), None)
        if recorded is None:
            same = [r for r in self.fixture.subagent_calls if r.request["prompt"] == prompt]
            differ = [k for k in request if same and request[k] != same[0].request[k]]
            why = f"recorded with another {', '.join(differ)}" if differ else "used up"
            why = why if same else "no recorded subagent call has this prompt"
            where = f"{self.fixture.name} ({why})"
            raise SubagentError(f"subagent call not answered by {where}: prompt {prompt!r}")
        self._subagents.remove(recorded)
        if recorded.error is not None:
            raise SubagentError(recorded.error)
        return SubagentResult(recorded.text, copy.deepcopy(recorded.output))


@dataclass(frozen=True)
class FixtureRun:
    fixture: Fixture
    calls: list[PlannedCall]  # every tool call attempted, in order (files.* left out)
    output: Any  # the handler's return value as JSON; None when it raised
    error: str | None  # the handler's exception and traceback
    diff: PlanDiff  # the fixture's calls against the attempted calls (diff_plans' rule)
    unanswered: list[PlannedCall]  # the calls that got ToolError type not_recorded
    logs: list[dict[str, Any]]
    flagged_repeated: list[PlannedCall]  # flagged calls the script made again


@contextmanager
def _sibling_imports(folder: Path) -> Iterator[None]:
    """load_handler puts the workflow folder on sys.path: take it off afterwards and forget
    the modules imported from there, so that the next replay (maybe of a workflow with a
    helper module of the same name) imports its own."""
    path_before, modules_before = list(sys.path), set(sys.modules)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = path_before
        for name in set(sys.modules) - modules_before:
            file = getattr(sys.modules[name], "__file__", None)
            if file and Path(file).resolve().is_relative_to(folder):
                del sys.modules[name]


def replay_fixture(
    script: str | Path, fixture: Fixture | str | Path, *, workflow_dir: str | Path | None = None
) -> FixtureRun:
    """Run the script's handler against a recording. The handler's exception is kept in
    `.error`, not raised; a script that cannot load (no handler, bad syntax) raises here."""
    fixture = fixture if isinstance(fixture, Fixture) else load_fixture(fixture)
    source = Path(script).resolve()
    folder = Path(workflow_dir).resolve() if workflow_dir is not None else source.parent
    client = _ReplayClient(fixture)
    proxy = cast(ToolHostClient, client)  # duck-typed: the proxies use only these methods
    output, error = None, None
    with _sibling_imports(folder):
        handler = load_handler(str(source), str(source), str(folder))
        try:
            trigger = copy.deepcopy(fixture.trigger)
            value = handler(trigger, Tools(proxy), VirtualFiles(proxy), Subagent(proxy))
            output = json.loads(json.dumps(value))  # what the host would record
        except (Exception, SystemExit) as raised:
            tb = raised.__traceback__
            error = "".join(traceback.format_exception(type(raised), raised, tb and tb.tb_next))
    diff = diff_plans(fixture.plan(), client.calls, wrong=fixture.wrong)
    return FixtureRun(
        fixture, client.calls, output, error, diff, client.unanswered, client.logs, diff.repeated
    )


def assert_replays(
    script: str | Path,
    fixture: Fixture | str | Path,
    *,
    workflow_dir: str | Path | None = None,
    strict_order: bool = False,
    check_output: bool | None = None,
) -> FixtureRun:
    """Replay, then assert: the script raised nothing, its calls agree with the recorded
    plan and (check_output) its output equals the recorded output. `check_output` defaults
    to whether a script made the recording: a model's answer is prose, not the script's
    value. For a fixture with wrong calls (flagged, or denied in an approval): it made none
    of them again and agrees with the rest of the recorded plan; the recorded output, from
    the wrong run, is not compared."""
    __tracebackhide__ = True  # pytest shows the failure at the test's line, not in here
    fixture = fixture if isinstance(fixture, Fixture) else load_fixture(fixture)
    run = replay_fixture(script, fixture, workflow_dir=workflow_dir)
    flagged = bool(fixture.wrong)
    diff = run.diff
    problems = []
    if run.error is not None:
        problems.append(f"the script raised {run.error.strip().splitlines()[-1]}")
    if run.flagged_repeated:
        problems.append(f"it made {len(run.flagged_repeated)} flagged call(s) again")
    others = PlanDiff([entry for entry in diff.entries if entry.kind != "repeated"])
    if not others.agrees(strict_order=strict_order):
        problems.append(f"its calls differ from the expected plan: {diff.summary()}")
    if check_output is None:
        check_output = fixture.coordinator == "script"
    compare = check_output and not flagged and run.error is None
    if output_differs := compare and canonical(run.output) != canonical(fixture.output):
        problems.append("its output differs from the recorded output")
    if problems:
        raise AssertionError(_report(Path(script).name, run, diff, problems, output_differs))
    return run


def _report(
    script: str, run: FixtureRun, diff: PlanDiff, problems: list[str], output_differs: bool
) -> str:
    fixture, flag = run.fixture, run.fixture.flagged
    lines = [f"{script} does not replay {fixture.name}:", *(f"  - {p}" for p in problems), ""]
    lines.append(
        "the recorded plan against the replay (- missing, + added, ~ changed, ↕ moved,"
        " · flagged call not repeated, ! flagged call made again):"
    )
    lines += [f"    {line}" for entry in diff.lines() for line in entry.splitlines()]
    lines.append(f"  {diff.summary() or 'no calls on either side'}")
    if run.flagged_repeated:
        why = (flag.reason or "no reason given") if flag else "denied in an approval"
        lines += ["", f"flagged calls made again (flagged: {why}):"]
        lines += [f"    {call}" for call in run.flagged_repeated]
    if run.unanswered:
        lines += ["", "calls the recording could not answer (ToolError not_recorded):"]
        lines += [f"    {call}" for call in run.unanswered]
    if output_differs:
        for label, value in (("recorded", fixture.output), ("replayed", run.output)):
            text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
            lines += ["", f"output, {label}:", *(f"    {line}" for line in text.splitlines())]
    if run.error is not None:
        lines += ["", "the script's traceback:", *(f"    {t}" for t in run.error.splitlines())]
    return "\n".join(lines)
