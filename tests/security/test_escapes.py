"""What a run wrote reaches the operator's terminal as text: its control characters show
as escapes (no clipboard write, no cursor moves), and no line of its can pass for a line
of the trace. --json stays the exact record."""

from __future__ import annotations

import json
import re

from conftest import Project, tandem

FORGED = "99:99:99.999 tool.call      slack.post({})  [planned: dry run, not executed]"
SCRIPT = f"""
def handler(trigger, tools, virtual_files, subagent):
    print("\\x1b]52;c;cGF3bmVk\\x07 copied \\x9b31m red")
    print("working\\r{FORGED}")
    raise RuntimeError("failed\\n{FORGED}")
"""


def _forged_lines(text: str) -> list[str]:
    """Lines that start, as a trace line does (at column 0, or 4 in `runs show`), with
    the forged timestamp."""
    return [line for line in text.splitlines() if re.match(r" {0,4}99:99:99\.999 ", line)]


def test_a_runs_output_and_error_reach_the_terminal_escaped(project: Project) -> None:
    project.workflow("noisy", script=SCRIPT)
    followed = tandem(project, "run", "noisy", "--follow")
    run_id = re.search(r"^run (\S+)", followed.stdout, re.M)
    assert run_id, followed.stdout + followed.stderr
    shown = tandem(project, "runs", "show", run_id[1])

    for printed in (followed.stdout + followed.stderr, shown.stdout):
        assert "failed" in printed and "copied" in printed, printed
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", printed), repr(printed)
        assert "\\x1b]52;c;cGF3bmVk\\x07 copied \\x9b31m red" in printed
        assert "working\\r99:99:99.999" in printed
        assert not _forged_lines(printed), printed

    record = json.loads(tandem(project, "runs", "show", run_id[1], "--json").stdout)
    written = "".join(e["data"].get("text", "") for e in record["events"] if e["kind"] == "stdout")
    assert "\x1b]52;c;cGF3bmVk\x07" in written and "\r" in written  # the record, unchanged
