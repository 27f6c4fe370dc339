"""Load one workflow folder into an immutable, fully checked `Workflow`.

Everything that can be checked without running anything is checked here: the YAML, every
field, the script's syntax and its `handler`, the prompt, tool names against the plugins,
and every virtual file. Problems are collected, each naming the file and the field.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pydantic
import yaml
from tandem_sdk.errors import DefinitionError

from tandem.files_tools import FILE_TOOL_NAMES
from tandem.suggest import did_you_mean
from tandem.tools import SchemaCheck

from .paths import UnsafePath, normalise_virtual_path, resolve_inside
from .spec import WorkflowSpec

WORKFLOW_FILE = "workflow.yaml"
GUARDS_FILE = "guards.py"
MAX_FILES_BYTES = 16 * 1024 * 1024


class WorkflowError(DefinitionError):
    """One or more problems in a workflow; `problems` are (file, field, message)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [
            f"{file}: {name}: {message}" if name else f"{file}: {message}"
            for file, name, message in problems
        ]
        super().__init__(problems[0][0], "\n".join(lines))

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Workflow:
    name: str
    folder: Path
    spec: WorkflowSpec
    version: str
    script_source: str | None
    prompt_text: str | None
    files: dict[str, bytes] = field(repr=False)
    inputs: SchemaCheck | None = field(default=None, compare=False, repr=False)
    # guards.py, when the folder has one, and the names of its guards (tandem.guards).
    guards_source: str | None = field(default=None, repr=False)
    guard_names: frozenset[str] = frozenset()

    def guard_for(self, tool: str) -> str | None:
        """The name of the guard asked before each call of `tool`, if guards.py has one."""
        name = guard_name(tool)
        return name if name in self.guard_names else None

    def in_scope(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.spec.tools)

    def payload_problem(self, payload: object) -> str | None:
        """What makes `payload` miss the workflow's input_schema; None when it fits (or
        the workflow declares none)."""
        if self.inputs is None:
            return None
        return self.inputs.problem(payload, "payload")

    @property
    def script_path(self) -> Path | None:
        name = self.spec.coordinator_script
        return self.folder / name if name else None


def load_workflow(
    folder: Path, known_tools: Collection[str], broken_plugins: Mapping[str, str] | None = None
) -> Workflow:
    """Load and check a workflow folder; `broken_plugins` (name -> why) lets a tool of a
    plugin that failed to load be named as such."""
    yaml_path = folder / WORKFLOW_FILE
    where = str(yaml_path)
    problems: list[tuple[str, str, str]] = []
    try:
        raw_bytes = yaml_path.read_bytes()
        data = yaml.safe_load(raw_bytes)
    except (OSError, yaml.YAMLError) as error:
        raise WorkflowError([(where, "", f"cannot read: {error}")]) from error
    if not isinstance(data, dict):
        raise WorkflowError([(where, "", "must be a mapping of fields")])
    data.setdefault("name", folder.name)
    try:
        spec = WorkflowSpec.model_validate(data)
    except pydantic.ValidationError as error:
        raise WorkflowError(
            [(where, ".".join(str(p) for p in e["loc"]) or "", e["msg"]) for e in error.errors()]
        ) from error
    if spec.name != folder.name:
        problems.append(
            (where, "name", f"{spec.name!r} must match the folder name {folder.name!r}")
        )

    hasher = hashlib.sha256(raw_bytes)
    script_source = _read_text(
        folder, spec.coordinator_script, where, "coordinator_script", problems
    )
    if spec.coordinator == "script" and spec.coordinator_script is None:
        problems.append((where, "coordinator_script", "required when coordinator: script"))
    if script_source is not None and spec.coordinator_script:
        _check_script(str(folder / spec.coordinator_script), script_source, problems)
    prompt_text = _read_text(folder, spec.prompt, where, "prompt", problems)
    if spec.coordinator == "llm" and spec.prompt is None:
        problems.append((where, "prompt", "required when coordinator: llm"))
    if spec.shadow == spec.coordinator:
        problems.append(
            (where, "shadow", f"the shadow must be the other coordinator, not {spec.shadow}")
        )
    elif spec.shadow == "script" and spec.coordinator_script is None:
        problems.append((where, "coordinator_script", "required when shadow: script"))
    elif spec.shadow == "llm" and spec.prompt is None:
        problems.append((where, "prompt", "required when shadow: llm"))

    inputs = _input_check(spec, where, problems)
    offered = set(known_tools) | (FILE_TOOL_NAMES if spec.files else set())
    for pattern in spec.tools:
        if not any(fnmatch.fnmatchcase(tool, pattern) for tool in offered):
            problems.append((where, "tools", _no_tool(pattern, offered, broken_plugins)))

    _check_notify(spec, where, known_tools, broken_plugins, problems)
    in_scope = [t for t in offered if any(fnmatch.fnmatchcase(t, p) for p in spec.tools)]
    guards_source, guard_names = _load_guards(folder, in_scope, problems)

    files: dict[str, bytes] = {}
    total = 0
    for virtual, source in sorted(spec.files.items()):
        try:
            key = normalise_virtual_path(virtual)
            target = resolve_inside(folder, source)
            content = target.read_bytes()
        except (UnsafePath, OSError) as error:
            problems.append((where, f"files.{virtual}", str(error)))
            continue
        total += len(content)
        files[key] = content
    if total > MAX_FILES_BYTES:
        problems.append((where, "files", f"{total} bytes in all; at most {MAX_FILES_BYTES}"))
    if problems:
        raise WorkflowError(problems)

    for part in (script_source, prompt_text, guards_source):
        hasher.update(b"\0" + (part or "").encode())
    for key, content in files.items():
        hasher.update(b"\0" + key.encode() + b"\0" + content)
    return Workflow(
        name=spec.name,
        folder=folder,
        spec=spec,
        version=hasher.hexdigest()[:16],
        script_source=script_source,
        prompt_text=prompt_text,
        files=files,
        inputs=inputs,
        guards_source=guards_source,
        guard_names=guard_names,
    )


def guard_name(tool: str) -> str:
    """The function name of `tool`'s guard: every character that cannot be in a Python
    name becomes `_` (`slack.add_reaction` -> `slack_add_reaction`, an MCP tool
    `docs.get-page` -> `docs_get_page`)."""
    return re.sub(r"\W", "_", tool, flags=re.ASCII)


def _load_guards(
    folder: Path, in_scope: Collection[str], problems: list[tuple[str, str, str]]
) -> tuple[str | None, frozenset[str]]:
    """guards.py's source and its guards: top-level functions not starting with `_`, each
    named after a tool in scope (a guard for any other tool would never be asked)."""
    path = folder / GUARDS_FILE
    if not path.is_file():
        return None, frozenset()
    where = str(path)
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=where)
    except (OSError, UnicodeDecodeError) as error:
        problems.append((where, "", f"cannot read: {error}"))
        return None, frozenset()
    except SyntaxError as error:
        problems.append((where, f"line {error.lineno}", f"syntax error: {error.msg}"))
        return None, frozenset()
    tools = {guard_name(tool): tool for tool in in_scope}
    names = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if node.name.startswith("_"):
            continue  # a helper of the guards
        if node.name not in tools:
            hint = did_you_mean(node.name, tools, cutoff=0.8)
            problems.append((where, node.name, f"guards no tool in the workflow's scope{hint}"))
        elif isinstance(node, ast.AsyncFunctionDef) or len(node.args.args) != 2:
            problems.append((where, node.name, "a guard is def name(call, history)"))
        else:
            names.add(node.name)
    for name, line in _bound_otherwise(tree):
        if name in tools and not name.startswith("_"):
            problems.append(
                (where, f"line {line}", f"{name} would guard {tools[name]} only as a plain def")
            )
    return source, frozenset(names)


def _bound_otherwise(tree: ast.Module) -> list[tuple[str, int]]:
    """Module-level names bound other than by a top-level def (an assignment, an import, a
    class, a def inside if/try/with): a guard the host would never ask, so a load error."""
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(statement, ast.ClassDef):
            found.append((statement.name, statement.lineno))
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.append((node.name, node.lineno))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.append((node.id, node.lineno))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                found += [((a.asname or a.name).split(".")[0], node.lineno) for a in node.names]
    return found


def _read_text(
    folder: Path,
    name: str | None,
    where: str,
    field_name: str,
    problems: list[tuple[str, str, str]],
) -> str | None:
    if name is None:
        return None
    try:
        return resolve_inside(folder, name).read_text(encoding="utf-8")
    except (UnsafePath, OSError, UnicodeDecodeError) as error:
        problems.append((where, field_name, f"{name}: {error}"))
        return None


def _input_check(
    spec: WorkflowSpec, where: str, problems: list[tuple[str, str, str]]
) -> SchemaCheck | None:
    """The input_schema compiled, or a problem naming where in it it is not a schema."""
    if spec.input_schema is None:
        return None
    from jsonschema.exceptions import SchemaError

    try:
        return SchemaCheck.create(f"workflow {spec.name}", spec.input_schema)
    except SchemaError as error:
        at = ".".join(["input_schema", *(str(p) for p in error.absolute_path)])
        problems.append((where, at, f"not a valid JSON Schema: {error.message}"))
    except ValueError as error:
        problems.append((where, "input_schema", str(error)))
    return None


def _check_script(path: str, source: str, problems: list[tuple[str, str, str]]) -> None:
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as error:
        problems.append((path, f"line {error.lineno}", f"syntax error: {error.msg}"))
        return
    handlers = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "handler"
    ]
    if not handlers:
        problems.append(
            (path, "handler", "define handler(trigger, tools, virtual_files, subagent)")
        )
    elif len(handlers[0].args.args) != 4:
        problems.append(
            (path, "handler", "takes exactly (trigger, tools, virtual_files, subagent)")
        )


# What the host calls to announce a held call in Slack, and to show its decision there.
SLACK_NOTIFY_TOOLS = ("slack.post_message", "slack.update_message")


def _check_notify(
    spec: WorkflowSpec,
    where: str,
    known_tools: Collection[str],
    broken: Mapping[str, str] | None,
    problems: list[tuple[str, str, str]],
) -> None:
    """`approvals.notify.slack` needs the slack plugin, whatever the workflow's `tools:`."""
    notify = spec.approvals.notify
    if notify is None or all(tool in known_tools for tool in SLACK_NOTIFY_TOOLS):
        return
    if broken and "slack" in broken:
        why = f"plugin 'slack' failed to load: {broken['slack']}"
    else:
        why = f"no plugin provides {' and '.join(SLACK_NOTIFY_TOOLS)}: add the slack plugin"
    problems.append((where, "approvals.notify.slack", f"{notify.slack!r} needs Slack: {why}"))


def _no_tool(pattern: str, offered: Collection[str], broken: Mapping[str, str] | None) -> str:
    plugin = pattern.partition(".")[0]
    if broken and plugin in broken:
        return f"{pattern!r}: plugin {plugin!r} failed to load: {broken[plugin]}"
    hint = did_you_mean(pattern, offered, cutoff=0.8)
    return f"no plugin provides a tool matching {pattern!r}{hint}"
