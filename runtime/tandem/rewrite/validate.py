"""The acceptance test of a rewrite: the candidate script, in a copy of the workflow's
folder under the state folder, replayed against recorded runs by the host (every call
answered from the recording, nothing runs), each replay judged by the rule of
`tandem_sdk.testing.assert_replays`, so that the fixtures exported afterwards pass the
script's own tests:

- the script raised nothing (and did not escalate: the model finishing a run is not the
  script agreeing with it);
- its calls agree with the recorded plan by `tandem_sdk.plan.diff_plans` (order aside):
  a call a person flagged or denied is left out, never made again;
- for a run without such calls that a script made, its output equals the recorded output.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from tandem_sdk.plan import PlanDiff, PlannedCall, canonical, diff_plans

from tandem.client import ControlClient
from tandem.escalation import EVENT as ESCALATION_EVENT
from tandem.replay import Recording
from tandem.store import RunRecord
from tandem.watching import watch_run
from tandem.workflows import Workflow

from .material import shrink
from .yaml_edit import SCRIPT, set_script_coordinator

# Left out of the candidate's copy of the workflow folder (at its top level).
NOT_COPIED = {"tests", "script.candidate.py", "REWRITE.md"}
ERROR_BUDGET = 4000


def write_candidate(workflow: Workflow, state_dir: Path, script: str) -> Path:
    """A copy of the workflow's folder, named like it (the host checks), run by `script`."""
    folder = state_dir / "rewrite" / workflow.name
    if folder.exists():
        shutil.rmtree(folder)
    _copy_as_loaded(workflow.folder, folder)
    spec = folder / "workflow.yaml"
    spec.write_text(set_script_coordinator(spec.read_text(encoding="utf-8")), encoding="utf-8")
    (folder / SCRIPT).write_text(script, encoding="utf-8")
    return folder


def _copy_as_loaded(source: Path, target: Path) -> None:
    """Copy a workflow folder as a run sees it, never reading a host file through a link:
    a link that resolves inside the folder stays a link to the copy's own file; one that
    leaves it (which the loader refuses, and a sandboxed run cannot follow) is left out,
    and so is anything but plain files and folders (a fifo would block the copy)."""
    root = source.resolve()
    for where, folders, files in os.walk(root):
        here = Path(where)
        copy = target / here.relative_to(root)
        copy.mkdir(parents=True, exist_ok=True)
        top = here == root
        folders[:] = [n for n in folders if not _left_out(n, top)]
        for name in [*folders, *files]:
            path = here / name
            if path.is_symlink():
                linked = path.resolve()
                if linked.is_relative_to(root):
                    inside = target / linked.relative_to(root)
                    (copy / name).symlink_to(os.path.relpath(inside, copy))
            elif name in files and not _left_out(name, top) and stat.S_ISREG(path.lstat().st_mode):
                shutil.copy2(path, copy / name, follow_symlinks=False)
        folders[:] = [n for n in folders if not (here / n).is_symlink()]


def _left_out(name: str, top: bool) -> bool:
    return name == "__pycache__" or (top and name in NOT_COPIED)


@dataclass(frozen=True)
class Verdict:
    """One recorded run, replayed through the candidate."""

    run: RunRecord
    replay: str | None  # None when the host refused to start the replay
    diff: PlanDiff
    repeated: list[PlannedCall] = field(default_factory=list)  # flagged calls made again
    error: str | None = None  # what the candidate raised, or why it could not run
    details: str | None = None  # its traceback
    output: Any = None
    output_differs: bool = False

    @property
    def agree(self) -> bool:
        return self.error is None and not self.output_differs and self.diff.agrees()

    def line(self) -> str:
        what = self.run.coordinator + (", flagged" if self.run.flag else "")
        notes = [self.diff.summary() or "no calls"]
        if self.repeated:
            notes.append(f"made {len(self.repeated)} flagged call(s) again")
        if self.output_differs:
            notes.append("output differs")
        if self.error is not None:
            notes.append(f"raised {_last_line(self.error)}")
        mark = "agree " if self.agree else "DIFFER"
        return f"{mark}  {self.run.id}  {what:<14} {'; '.join(notes)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run.id,
            "coordinator": self.run.coordinator,
            "flagged": self.run.flag is not None,
            "agree": self.agree,
            "replay": self.replay,
            "summary": self.diff.summary(),
            "diff": self.diff.to_json(),
            "repeated": [call.to_json() for call in self.repeated],
            "output_differs": self.output_differs,
            "error": self.error,
        }

    def report(self) -> str:
        """The disagreement in full, for the model's repair turn."""
        flag = self.run.flag
        what = self.run.coordinator + (
            f", flagged: {(flag or {}).get('reason') or 'no reason given'!r}" if flag else ""
        )
        expected = "The recorded plan (· a flagged or denied call, rightly left out)"
        lines = [
            f"### Run `{self.run.id}` ({what})",
            f"Trigger: {shrink(self.run.trigger, 1500)}",
            f"{expected}, against your script's calls:",
            *(f"    {line}" for entry in self.diff.lines() for line in entry.splitlines()),
            f"  ({self.diff.summary() or 'no calls on either side'})",
        ]
        if self.repeated:
            lines.append("Flagged calls your script made again, which it must never make:")
            lines += [f"    {call}" for call in self.repeated]
        if self.output_differs:
            lines.append(f"Output, recorded: {shrink(self.run.output, 1500)}")
            lines.append(f"Output, yours:    {shrink(self.output, 1500)}")
        if self.error is not None:
            raised = self.details or self.error
            if len(raised) > ERROR_BUDGET:
                raised = "…" + raised[-ERROR_BUDGET:]
            lines.append("Your script raised:")
            lines += [f"    {line}" for line in raised.strip().splitlines()]
        return "\n".join(lines)


def validate(client: ControlClient, runs: Sequence[RunRecord], candidate: Path) -> list[Verdict]:
    verdicts = []
    for run in runs:
        recorded = client.run(run.id)
        try:
            replay_id = client.replay(run.id, "script", str(candidate), False)
        except grpc.RpcError as error:
            refused = f"the candidate could not run: {_details(error)}"
            recording = Recording.from_run(recorded)
            nothing = diff_plans(recording.plan, [], wrong=recording.wrong)
            verdicts.append(Verdict(recorded, None, nothing, [], refused))
            continue
        watch_run(client, replay_id)
        verdicts.append(judge(recorded, client.run(replay_id)))
    return verdicts


def judge(recorded: RunRecord, replayed: RunRecord) -> Verdict:
    recording = Recording.from_run(recorded)
    diff = recording.diff(replayed)
    error = details = None
    if replayed.status != "succeeded":
        error = replayed.error or f"the replay ended {replayed.status}"
        ends = [e.data.get("details") for e in replayed.events if e.kind == "run.finished"]
        details = str(ends[-1]) if ends and ends[-1] else None
    handed = [e.data.get("reason") for e in replayed.events if e.kind == ESCALATION_EVENT]
    if handed and error is None:  # the model finished it: the script did not
        error = f"the script escalated ({handed[0]}): it must handle this run itself"
    compare = recorded.coordinator == "script" and not recording.wrong and error is None
    return Verdict(
        run=recorded,
        replay=replayed.id,
        diff=diff,
        repeated=diff.repeated,
        error=error,
        details=details,
        output=replayed.output,
        output_differs=compare and canonical(recorded.output) != canonical(replayed.output),
    )


def table(verdicts: Sequence[Verdict]) -> list[str]:
    agreed = sum(1 for v in verdicts if v.agree)
    return [v.line() for v in verdicts] + [f"agreed {agreed} of {len(verdicts)}"]


def _details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    return str(details()) if callable(details) else str(error)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else text
