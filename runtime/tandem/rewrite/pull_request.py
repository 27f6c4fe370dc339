"""The pull request `tandem rewrite --pr` opens: its title, and a description holding the
evidence a reviewer needs, from the runs the script was validated against, the workflow's
folder and the ledger's report:

- the replay agreement table: each recorded run replayed through the script, agree/differ;
- shadow agreement, when shadows of the workflow ran (`tandem shadow`);
- the guards: the functions of the workflow's guards.py and the first line of each one's
  docstring (read, never imported: it is workflow code), with the calls each refused in
  the ledger (its `refusals`);
- the runs that were flagged (a person's reason), had a call refused by a guard
  (`guard.refused`) or denied at an approval, or escalated (`run.escalated` events);
- the ledger's projection of the tokens and cost the script saves at the observed rate.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tandem.escalation import EVENT as ESCALATION_EVENT
from tandem.ledger.projection import DAY_S, MONTH_DAYS, Projection, script_savings
from tandem.store import RunRecord

from .validate import Verdict

GUARDS = "guards.py"


def title(workflow: str) -> str:
    return f"{workflow}: a reviewed script takes over from the prompt"


def description(
    folder: Path,
    verdicts: Sequence[Verdict],
    groups: Sequence[Mapping[str, Any]],
    files: Sequence[str],
    refused: Mapping[str, int],
    *,
    ahead: tuple[str, int] = ("", 0),
) -> str:
    """The pull request's markdown. `groups` are the ledger report's (`tandem stats
    --json`) and `refused` its refusals of this workflow ({guard: calls}); `files` the
    paths the branch's commit wrote, relative to the repository; `ahead` (branch, count)
    the commits of the branch it was made off that its upstream lacks, which it holds too."""
    workflow = folder.name
    agreed = sum(1 for v in verdicts if v.agree)
    lines = [
        f"`tandem rewrite` wrote `script.py` for **{workflow}** and switched its"
        " `workflow.yaml` to `coordinator: script`. Each recorded run below was replayed"
        " through the script (every tool call answered from the recording, nothing run);"
        f" **{agreed} of {len(verdicts)}** agree, and ship as fixtures with a test.",
        "",
        "## Replay agreement",
        "",
        *replay_table(verdicts),
        "",
        "## Shadow agreement",
        "",
        *shadow_lines(groups, workflow),
        "",
        "## Guards",
        "",
        *guard_lines(folder, refused),
        "",
        "## Flagged and escalated runs",
        "",
        *flagged_lines([v.run for v in verdicts]),
        "",
        "## Projected savings",
        "",
        *savings_lines(script_savings(groups, workflow)),
        "",
        "## Files",
        "",
        *(f"- `{path}`" for path in files),
    ]
    current, count = ahead
    if count:
        lines += [
            "",
            f"This branch was made off `{current}`, which has {count} commit(s) not pushed"
            " to its upstream: they are part of this pull request too.",
        ]
    return "\n".join(lines) + "\n"


def replay_table(verdicts: Sequence[Verdict]) -> list[str]:
    rows = ["| Run | Coordinator | Flagged | Replay | Notes |", "|---|---|---|---|---|"]
    for v in verdicts:
        notes = [v.diff.summary() or "no calls"]
        if v.output_differs:
            notes.append("output differs")
        if v.error is not None:
            said = v.error.strip().splitlines()
            notes.append(f"raised {said[-1] if said else v.error}")
        cells = [
            f"`{v.run.id}`",
            v.run.coordinator,
            "yes" if v.run.flag else "",
            "agree" if v.agree else "**differ**",
            "; ".join(notes),
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def shadow_lines(groups: Sequence[Mapping[str, Any]], workflow: str) -> list[str]:
    shadowed = [
        g
        for g in groups
        if g.get("workflow") == workflow and (g.get("shadows") or {}).get("runs", 0) > 0
    ]
    if not shadowed:
        return ["No shadow ran (`tandem shadow` runs a coordinator beside live runs)."]
    rows = ["| Coordinator | Version | Shadows | Agreed |", "|---|---|---|---|"]
    for g in shadowed:
        shadows = g["shadows"]
        cells = [g.get("coordinator", ""), f"`{g.get('version', '')}`", shadows["runs"]]
        rows.append("| " + " | ".join(map(str, [*cells, shadows.get("agreed", 0)])) + " |")
    return rows


def guards(folder: Path) -> list[tuple[str, str]]:
    """(name, first docstring line) of each public function in the folder's guards.py."""
    path = folder / GUARDS
    if not path.is_file():
        return []
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (SyntaxError, UnicodeDecodeError):
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            found.append((node.name, doc[0] if doc else ""))
    return found


def guard_lines(folder: Path, refused: Mapping[str, int]) -> list[str]:
    """The guards, each with the calls it refused in the ledger's runs; a guard the
    ledger counts but guards.py no longer has is listed too (it refused under an older
    version)."""
    listed = guards(folder)
    gone = [(name, "no longer in guards.py") for name in refused if name not in dict(listed)]
    if not listed and not gone:
        return [f"The workflow has no guards (`{GUARDS}`)."]
    lines = [f"The host asks these in `{GUARDS}` before each tool call, of the script too:", ""]
    for name, doc in [*listed, *gone]:
        count = refused.get(name, 0)
        said = f" (refused {count} call{'' if count == 1 else 's'} in the ledger's runs)"
        lines.append(f"- `{name}`" + (f": {doc}" if doc else "") + (said if count else ""))
    return lines


def flagged_lines(runs: Sequence[RunRecord]) -> list[str]:
    lines = []
    for run in runs:
        if run.flag:
            reason = run.flag.get("reason") or "no reason given"
            calls = run.flag.get("calls") or []
            # Numbered as `tandem runs show` numbers them (the flag keeps indexes from 0).
            which = f" (call {', '.join(str(c + 1) for c in calls)})" if calls else ""
            lines.append(f"- `{run.id}` flagged{which}: {_inline(reason)}")
        for event in run.events:
            reason = _inline(str(event.data.get("reason") or "no reason given"))
            tool = event.data.get("tool", "?")
            if event.kind == ESCALATION_EVENT:
                lines.append(f"- `{run.id}` escalated to the model: {reason}")
            elif event.kind == "guard.refused":  # a wrong call, as a flagged one is
                guard = event.data.get("guard", "?")
                lines.append(
                    f"- `{run.id}` had a call refused by guard `{guard}` ({tool}): {reason}"
                )
            elif event.kind == "approval.decided" and event.data.get("approved") is False:
                lines.append(f"- `{run.id}` had a call denied ({tool}): {reason}")
    return lines or ["None of the runs was flagged, refused or escalated."]


def savings_lines(projection: Projection | None) -> list[str]:
    if projection is None:
        return [
            "No projection: the ledger has fewer than two runs of the prompt apart in time"
            " to measure a rate from."
        ]
    p = projection
    rate = (
        f"At the observed rate of {_number(p.runs_per_day)} runs a day ({p.runs} runs of the"
        f" prompt, version `{p.version}`, over {_span(p.days * DAY_S)})"
    )
    tokens = f"{_number(p.tokens_per_run)} tokens a run"
    cost = "" if p.cost_per_run is None else f" and ${p.cost_per_run:.4f}"
    month = f"{_number(p.tokens_per_day * MONTH_DAYS)} tokens"
    if p.cost_per_day is not None:
        month += f" and ${p.cost_per_day * MONTH_DAYS:,.2f}"
    unknown = "" if p.cost_per_run is not None else " (cost unknown: a model without a price)"
    return [
        f"{rate}, the script saves the {tokens}{cost} the model spent: about {month} every"
        f" {MONTH_DAYS} days{unknown}. A script asks no model."
    ]


def _span(seconds: float) -> str:
    for unit, size in (("days", DAY_S), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{_number(seconds / size)} {unit}"
    return f"{_number(seconds)} seconds"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2g}" if value < 1 else f"{value:,.1f}"


def _inline(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|")
