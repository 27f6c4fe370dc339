"""`tandem run --model-replies`: an llm run answered by scripted model turns, offline.

The turns come from a file (YAML or JSON) or from a recorded run (`run:RUN_ID`, its
`model.response` events). They are served by the Messages API stand-in
(`tandem.testing.AnthropicStandIn`) on 127.0.0.1, in this process, and the run goes
through a host embedded in this process too, never a running daemon: a daemon's
environment is fixed when it starts, so only a host started here can be pointed at the
stand-in. While it runs, `ANTHROPIC_BASE_URL` and `ANTHROPIC_API_KEY` point at the
stand-in; they are put back as they were afterwards. The turns are the run's own: a
shadow of the run (workflow.yaml `shadow`) never takes them. A script shadow runs, the
command waiting for it; an llm shadow is recorded as skipped, saying why.

A file is a list of assistant turns, one per model request, in order:

    - text: "I'll read the settings first."      # optional before tool calls
      tool_use:                                   # one or more (parallel when several)
        - {name: files.read, input: {path: settings.json}}
    - text: "Added 2 reactions."                  # only text: the model ends its turn
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tandem.llm.api import BASE_URL_VARIABLE, KEY_VARIABLE
from tandem.llm.naming import UnmappableName, to_api_name
from tandem.testing.replies import JSON, Reply, ToolUse, new_id

from .common import EXIT_OK, EXIT_RUN_FAILED, UsageError

if TYPE_CHECKING:
    from tandem.config import ProjectConfig
    from tandem.store import RunRecord
    from tandem.testing.anthropic_api import AnthropicStandIn

RUN_PREFIX = "run:"
TURN_KEYS = ("text", "tool_use")
CALL_KEYS = ("name", "input")
# Unset for the duration: the anthropic client would send a token of the user's own too.
HIDDEN_VARIABLES = ("ANTHROPIC_AUTH_TOKEN",)
# How Tandem marks a value it cut to keep a trace small (tandem.session._capped).
_CUT = re.compile(r"\.\.\. \[\d+ (chars|items) cut\]$")


class ScriptedModel:
    """The scripted turns of one `tandem run`, and the stand-in that serves them.

    `serve()` starts the stand-in and points the environment at it; the caller then runs
    the workflow on a host embedded in this process (`control(config, prefer_daemon=False)`)
    and hands the result to `finish`, which prints the stand-in's problems."""

    def __init__(self, source: str, replies: list[Reply]) -> None:
        self.source = source  # as the user gave it: a file, or run:RUN_ID
        self.replies = replies
        self.api: AnthropicStandIn | None = None

    @classmethod
    def load(cls, config: ProjectConfig, value: str) -> ScriptedModel:
        """From `--model-replies`: `run:RUN_ID` for a recorded run, else a file."""
        if value.startswith(RUN_PREFIX):
            run_id = value[len(RUN_PREFIX) :].strip()
            return cls(value, replies_from_run(_recorded_run(config, run_id)))
        return cls(value, read_replies(Path(value)))

    @property
    def banner(self) -> str:
        return f"model: scripted replies from {self.source} (no API call)"

    @contextlib.contextmanager
    def serve(self) -> Iterator[AnthropicStandIn]:
        """The stand-in, serving the replies, with the environment pointing at it."""
        from tandem.testing.anthropic_api import AnthropicStandIn

        with AnthropicStandIn(self.replies) as api:
            # The names ModelApi.from_env reads, which the embedded host's model calls use.
            pointed = {BASE_URL_VARIABLE: api.base_url, KEY_VARIABLE: api.api_key}
            with _environment(pointed):
                self.api = api
                yield api

    @property
    def skip_llm_shadows(self) -> str:
        """Why the run's llm shadow is skipped: the scripted turns are the run's own."""
        return (
            f"the model's replies ({self.source}) are scripted for the run itself;"
            " an llm shadow has no model of its own offline"
        )

    def warnings(self, record: RunRecord | None = None) -> list[str]:
        """What went differently from the script: requests the stand-in refused (a
        malformed request, or one more than there are replies) and replies left unused."""
        if self.api is None:
            return []
        found = [f"the Messages API stand-in refused a request: {p}" for p in self.api.problems]
        left = self.api.remaining
        if left:
            asked = len(self.api.requests)
            line = (
                f"{left} of the {len(self.replies)} scripted replies left unused"
                f" (the run made {asked} model request{'s' if asked != 1 else ''})"
            )
            if record is not None and record.coordinator != "llm" and not asked:
                line += f"; the run's coordinator was {record.coordinator}: pass --coordinator llm"
            found.append(line)
        return found

    def finish(self, record: RunRecord, code: int) -> int:
        """Print the warnings on stderr; the exit code, 1 if the stand-in refused a
        request of a run that succeeded all the same. Unused replies only warn."""
        for warning in self.warnings(record):
            print(f"tandem: warning: model replies: {warning}", file=sys.stderr)
        if code == EXIT_OK and self.api is not None and self.api.problems:
            return EXIT_RUN_FAILED
        return code


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ (and HIDDEN_VARIABLES unset) for the duration."""
    names = (*values, *HIDDEN_VARIABLES)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in HIDDEN_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(values)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the file form ---------------------------------------------------------------------------


def read_replies(path: Path) -> list[Reply]:
    """The replies of a YAML or JSON file; a UsageError naming the file and each turn
    that is wrong."""
    import yaml

    where = f"--model-replies {path}"
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"{where}: cannot read: {error.strerror or error}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{where}: not valid JSON: {error}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{where}: not valid YAML: {_yaml_problem(error)}") from None
    replies, problems = parse_turns(data)
    if problems:
        raise UsageError("\n  ".join(f"{where}: {problem}" for problem in problems))
    return replies


def read_answers(path: Path) -> list[Reply]:
    """`tandem rewrite --model-replies FILE`: the model's answers, text only, one per
    request (the script, then each repair turn). A .yaml, .yml or .json file is a list of
    turns as above, each a `text:`; any other file is one answer, its whole text (which
    holds the ```python block); a .py file is the script itself."""
    if path.suffix in (".yaml", ".yml", ".json"):
        replies = read_replies(path)
        for number, reply in enumerate(replies, 1):
            if reply.stop_reason == "tool_use":
                raise UsageError(
                    f"--model-replies {path}: turn {number}: a rewrite's answer is text"
                    " (a ```python block holding script.py), not tool_use"
                )
        return replies
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"--model-replies {path}: cannot read: {error.strerror}") from None
    if path.suffix == ".py":
        text = f"```python\n{text.rstrip()}\n```\n"
    return [Reply.text(text)]


def parse_turns(data: Any) -> tuple[list[Reply], list[str]]:
    """Replies from the parsed file, and every problem found (each naming its turn)."""
    if not isinstance(data, list):
        return [], [f"expected a list of turns, found {_kind(data)}"]
    if not data:
        return [], ["no turns: give at least one"]
    replies: list[Reply] = []
    problems: list[str] = []
    for number, turn in enumerate(data, 1):
        reply, found = _parse_turn(turn)
        problems += [f"turn {number}{p}" for p in found]
        if reply is not None:
            replies.append(reply)
    return replies, problems


def _parse_turn(turn: Any) -> tuple[Reply | None, list[str]]:
    """One turn; its problems start with ": " or ", tool call N: " (after "turn N")."""
    if not isinstance(turn, dict):
        return None, [
            f": expected a mapping with {' and/or '.join(TURN_KEYS)}, found {_kind(turn)}"
        ]
    problems = [
        f": unknown key {key!r} (a turn has {' and '.join(TURN_KEYS)})"
        for key in turn
        if key not in TURN_KEYS
    ]
    text = turn.get("text")
    if text is not None and not isinstance(text, str):
        problems.append(f": text must be a string, found {_kind(text)}")
        text = None
    calls = turn.get("tool_use")
    uses: list[ToolUse] = []
    if calls is not None:
        if not isinstance(calls, list) or not calls:
            problems.append(": tool_use must be a non-empty list of {name, input}")
        else:
            for index, call in enumerate(calls, 1):
                use, found = _parse_call(call)
                problems += [f", tool call {index}: {p}" for p in found]
                if use is not None:
                    uses.append(use)
    if calls is None and not text and not problems:
        problems.append(": empty turn: give text, tool_use, or both")
    if problems:
        return None, problems
    if uses:
        return Reply.tool_use(*uses, text=text or None), []
    return Reply.text(text or ""), []


def _parse_call(call: Any) -> tuple[ToolUse | None, list[str]]:
    if not isinstance(call, dict):
        return None, [f"expected a mapping with name and input, found {_kind(call)}"]
    problems = [
        f"unknown key {key!r} (a tool call has {' and '.join(CALL_KEYS)})"
        for key in call
        if key not in CALL_KEYS
    ]
    name = call.get("name")
    api_name = ""
    if not isinstance(name, str) or not name:
        problems.append("name is missing: a Tandem tool name, plugin.tool")
    else:
        try:
            api_name = to_api_name(name)
        except UnmappableName:
            hint = " (Tandem's name, not the API's)" if "__" in name else ""
            problems.append(f"{name!r} is not a tool name of the form plugin.tool{hint}")
    arguments = call.get("input", {})
    if not isinstance(arguments, dict):
        problems.append(
            f"input must be a mapping of the tool's arguments, found {_kind(arguments)}"
        )
    else:
        try:
            json.dumps(arguments)
        except (TypeError, ValueError) as error:
            problems.append(f"input is not JSON ({error}); quote dates and times")
    if problems:
        return None, problems
    return ToolUse(api_name, arguments), []


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"


def _yaml_problem(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)


# -- the run:RUN_ID form ---------------------------------------------------------------------


def _recorded_run(config: ProjectConfig, run_id: str) -> RunRecord:
    """The run from the project's store, read directly (WAL: beside a daemon too)."""
    from tandem.store import ACTIVE, PLAN_KINDS, open_existing_store

    where = f"--model-replies {RUN_PREFIX}{run_id}"
    if not run_id:
        raise UsageError(f"{where}: give a run id after {RUN_PREFIX}")
    store = open_existing_store(config)
    if store is None:
        raise UsageError(f"{where}: no runs recorded yet in {config.state_dir}")
    try:
        record = store.get(run_id, kinds=PLAN_KINDS)  # its model's turns, not its logs
    finally:
        store.close()
    if record is None:
        raise UsageError(f"{where}: no run {run_id!r} in {config.state_dir}")
    if record.status in ACTIVE:
        raise UsageError(f"{where}: the run is {record.status}; replay it once it has finished")
    return record


def replies_from_run(record: RunRecord) -> list[Reply]:
    """The model's turns of a recorded run, rebuilt from its `model.response` events (the
    coordinator's and its subagents', in the order they came): each one's text, then its
    tool uses, with its stop reason. Usage is not replayed: the stand-in estimates it."""
    where = f"--model-replies {RUN_PREFIX}{record.id}"
    replies: list[Reply] = []
    for event in record.events:
        if event.kind != "model.response":
            continue
        turn = len(replies) + 1
        if _was_cut(event.data):
            raise UsageError(
                f"{where}: model turn {turn} was cut short in the trace (a value over 64 KiB"
                " or a list over 1000 items), so it cannot be replayed"
            )
        replies.append(_reply_of(event.data))
    if not replies:
        raise UsageError(
            f"{where}: the run made no model calls to replay (coordinator {record.coordinator})"
        )
    return replies


def _reply_of(data: dict[str, Any]) -> Reply:
    blocks: list[JSON] = []
    if data.get("text"):
        blocks.append({"type": "text", "text": str(data["text"])})
    for use in data.get("tool_uses") or []:
        name = str(use["tool"])
        # The loop records the Tandem name, or the API name as given when none maps.
        try:
            api_name = to_api_name(name)
        except UnmappableName:
            api_name = name
        blocks.append(
            {
                "type": "tool_use",
                "id": new_id("toolu_"),
                "name": api_name,
                "input": dict(use.get("input") or {}),
            }
        )
    stop_reason = str(data.get("stop_reason") or "end_turn")
    details = (
        {"type": "refusal", "category": None, "explanation": None}
        if stop_reason == "refusal"
        else None
    )
    return Reply(content=tuple(blocks), stop_reason=stop_reason, stop_details=details)


def _was_cut(value: Any) -> bool:
    if isinstance(value, str):
        return _CUT.search(value) is not None
    if isinstance(value, dict):
        return any(_was_cut(v) for v in value.values())
    if isinstance(value, list):
        return any(_was_cut(v) for v in value)
    return False
