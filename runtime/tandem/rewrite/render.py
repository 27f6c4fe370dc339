"""The material as markdown: the model's request, and the brief for a person or a coding
assistant (`tandem rewrite WORKFLOW --brief`), which adds the task, the rules of
acceptance, the SDK and how to check a script."""

from __future__ import annotations

import keyword
import re

from tandem_sdk.plan import REFUSED, PlannedCall

from tandem.escalation import ESCALATED

from .instructions import ACCEPTANCE, GUARDS, SDK_SURFACE, TASK
from .material import RESULT_BUDGET, Material, SampleRun, escalated_first, shrink


def material_markdown(material: Material) -> str:
    parts = [
        f"# The workflow `{material.workflow}`",
        "## workflow.yaml",
        fenced(material.yaml_text, "yaml"),
        f"## Its prompt (`{material.prompt_file}`)",
        fenced(material.prompt, "markdown"),
        "## The tools in its scope",
        *(_tool(t.name, t.annotations, t.description, t.input_schema) for t in material.tools),
        "## Its virtual files",
        *(f"### `{path}`\n\n{fenced(text)}" for path, text in sorted(material.files.items())),
    ]
    if not material.files:
        parts.append("(none)")
    if material.guards:
        parts += ["## Its guards (`guards.py`)", GUARDS.strip(), fenced(material.guards, "python")]
    total = len(material.recorded)
    parts.append(f"## Recorded runs ({len(material.samples)} of the {total} to agree with)")
    parts += [_run(sample) for sample in material.samples] or ["(none recorded yet)"]
    return "\n\n".join(parts) + "\n"


def brief_markdown(material: Material) -> str:
    name = material.workflow
    listed = "\n".join(
        f"- `{r.id}` ({r.coordinator}, {r.status}"
        + (", ESCALATED by the script" if r.coordinator == ESCALATED else "")
        + (f", flagged: {(r.flag or {}).get('reason') or 'no reason given'}" if r.flag else "")
        + ")"
        for r in escalated_first(material.recorded)
    )
    parts = [
        f"# Rewrite `{name}` as a script",
        f"Written by `tandem rewrite {name} --brief`: the material `tandem rewrite` gives the"
        " model, for a person or a coding assistant.",
        "## The task",
        TASK.strip(),
        "## When the script is accepted",
        ACCEPTANCE.strip(),
        "The recorded runs to agree with, the escalated ones first, then newest first:\n\n"
        + (listed or "(none recorded yet)"),
        "## How to check it",
        _CHECK.format(name=name).strip(),
        "## The SDK a script is written against",
        SDK_SURFACE.strip(),
        material_markdown(material),
    ]
    return "\n\n".join(parts).rstrip() + "\n"


_CHECK = """
1. Export the runs above as fixtures, `tandem runs export RUN_ID
   <workflow folder>/tests/fixtures` for each, and replay them offline against the script
   with `tandem_sdk.testing.assert_replays(script, fixture)` in a
   `tests/test_script.py` (pytest, one test per fixture). It applies the rule above,
   flags included, and the fixtures stay with the script as its evidence.
2. Against the host: copy this workflow's folder to a candidate folder of the same name
   (`candidate/{name}`), put the script there as `script.py`, set `coordinator: script`
   and `coordinator_script: script.py` in its `workflow.yaml`, and run
   `tandem replay --workflow candidate/{name} --coordinator script --last N` (one line
   per run, then `agreed N of M`). That diff is against a run's whole recorded plan: in a
   flagged run, its flagged calls show as `- missing`, which is right.
3. Then set `coordinator: script` and `coordinator_script: script.py` in the workflow's
   own `workflow.yaml`.
"""


def _tool(name: str, annotations: str, description: str, schema: dict[str, object]) -> str:
    return (
        f"### `{name}` ({annotations})\n\n{description.strip()}\n\n"
        f"Called as `{call_form(name, schema)}`. Input schema:\n\n"
        + fenced(shrink(schema, 4 * RESULT_BUDGET), "json")
    )


def call_form(name: str, schema: dict[str, object]) -> str:
    """How a script calls the tool: `tools.git.git_status(repo_path=...)`, with item access
    for a part that is not an identifier (`tools["my-server"]["get-thing"](...)`)."""
    plugin, _, tool = name.partition(".")
    required = schema.get("required")
    arguments = ", ".join(f"{a}=..." for a in required) if isinstance(required, list) else ""
    return f"tools{_member(plugin)}{_member(tool)}({arguments})"


def _member(part: str) -> str:
    return f".{part}" if part.isidentifier() and not keyword.iskeyword(part) else f"[{part!r}]"


def _run(sample: SampleRun) -> str:
    title = f"### Run `{sample.run}`: {sample.coordinator}, {sample.status}"
    lines = [title + (", FLAGGED" if sample.flag_reason is not None else "")]
    if sample.escalation is not None:
        lines[0] += ", ESCALATED"
        lines.append(
            "The current script met a case it was not written for and handed this run to the"
            f" model (`Escalate`), saying {str(sample.escalation.get('reason'))!r}, with the"
            f" context {shrink(sample.escalation.get('context'))}. The calls below are the"
            " script's and then the model's: the new script must make them all itself."
        )
    if sample.flag_reason is not None:
        lines.append(
            f"A person flagged this run: {sample.flag_reason!r}. The calls marked FLAGGED"
            " were wrong: the script must not make them (and must make the others)."
        )
    lines.append("Trigger:\n\n" + fenced(shrink(sample.trigger, 2 * RESULT_BUDGET), "json"))
    calls = []
    for index, call in enumerate(sample.calls):
        mark = "FLAGGED " if index in sample.flagged_calls else ""
        if not mark and (call.get("error") or {}).get("type") == REFUSED:
            mark = "REFUSED "  # by a guard: wrong as a flagged call is
        planned = PlannedCall(str(call["tool"]), dict(call.get("arguments") or {}))
        calls.append(f"{index + 1}. {mark}{planned}\n   -> {_outcome(call)}")
    lines.append(
        "Tool calls, in order (reads of virtual files left out):\n\n"
        + fenced("\n".join(calls) or "(none)")
    )
    lines.append("Output:\n\n" + fenced(shrink(sample.output), "json"))
    return "\n\n".join(lines)


def _outcome(call: dict[str, object]) -> str:
    error = call.get("error")
    if isinstance(error, dict):
        return f"ToolError type {error.get('type')!r}: {error.get('message')}"
    if "result_over_cap" in call:
        return f"(a result of {call['result_over_cap']} bytes, too large to be recorded)"
    return shrink(call.get("result"))


def fenced(text: str, language: str = "") -> str:
    """A code block whose fence no backtick run in `text` can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"
