"""Whether a workflow's script may hand its run to the model, for `tandem check`'s warning
about one that can escalate in a workflow with no prompt (such a run fails). Read from
the script's syntax, without running it: `Escalate` named, or a `.take_over(...)` call."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml


def may_escalate(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:  # the workflow's load reports it
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.alias) and "Escalate" in (
            getattr(node, "id", None),
            getattr(node, "name", None),
        ):
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("Escalate", "take_over"):
            return True
    return False


def promptless_escalation(folder: Path) -> str | None:
    """The warning for the workflow in `folder`, or None."""
    try:
        spec = yaml.safe_load((folder / "workflow.yaml").read_text(encoding="utf-8"))
        if not isinstance(spec, dict) or spec.get("prompt") or not spec.get("coordinator_script"):
            return None
        source = (folder / str(spec["coordinator_script"])).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # the workflow's load reports it
        return None
    if not may_escalate(source):
        return None
    return (
        f"workflow {folder.name}'s script can escalate (Escalate, subagent.take_over), but the"
        " workflow has no prompt: an escalated run fails; add `prompt:` to its workflow.yaml"
    )
