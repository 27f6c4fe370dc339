"""Switch a workflow.yaml to its script by editing the text, not by dumping parsed YAML,
so that comments, order and layout survive: the top-level `coordinator:` and
`coordinator_script:` lines are replaced (a line that only comments a key out, such as
the llm skeleton's `# coordinator_script: script.py`, is the place of that key, and its
comment, which says to uncomment it, goes), or added, and a `shadow: script` becomes
`shadow: llm` (the prompt shadows the script it was rewritten into). The result is parsed
back and must differ from the original in exactly those keys."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import RewriteError

SCRIPT = "script.py"


def set_script_coordinator(text: str, script: str = SCRIPT) -> str:
    before = _mapping(text, "as it is")
    wanted = {"coordinator": "script", "coordinator_script": script}
    if before.get("shadow") == "script":
        wanted["shadow"] = "llm"
    lines = text.splitlines(keepends=True)
    for key, value in wanted.items():
        lines = _set(lines, key, value)
    edited = "".join(lines)
    if _mapping(edited, "once edited") != {**before, **wanted}:
        raise RewriteError(
            "workflow.yaml could not be edited in place; set `coordinator: script` and"
            f" `coordinator_script: {script}` in it by hand"
        )
    return edited


def _set(lines: list[str], key: str, value: str) -> list[str]:
    pattern = re.compile(
        rf"^{re.escape(key)}[ \t]*:[ \t]*[^#\r\n]*?(?P<comment>[ \t]*#.*?)?(?P<end>\r?\n?)$"
    )
    for i, line in enumerate(lines):
        if match := pattern.match(line):
            new = f"{key}: {value}"
            if match["comment"]:  # kept, in its column when there is room
                comment = match["comment"].lstrip(" \t")
                column = match.end("comment") - len(comment)
                new = new.ljust(column - 1) + " " + comment
            return [*lines[:i], new + (match["end"] or "\n"), *lines[i + 1 :]]
    commented_out = re.compile(rf"^#[ \t]?{re.escape(key)}[ \t]*:[ \t]*[^\s#][^\r\n]*(\r?\n?)$")
    for i, line in enumerate(lines):
        if match := commented_out.match(line):
            end = match[1] or "\n"
            return [*lines[:i], f"{key}: {value}{end}", *lines[i + 1 :]]
    after = next((i for i, line in enumerate(lines) if line.startswith("coordinator:")), None)
    if after is None:
        if lines and not lines[-1].endswith("\n"):
            lines = [*lines[:-1], lines[-1] + "\n"]
        return [*lines, f"{key}: {value}\n"]
    end = "\r\n" if lines[after].endswith("\r\n") else "\n"
    return [*lines[: after + 1], f"{key}: {value}{end}", *lines[after + 1 :]]


def _mapping(text: str, when: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RewriteError(f"workflow.yaml {when} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RewriteError(f"workflow.yaml {when} is not a mapping of fields")
    return data
