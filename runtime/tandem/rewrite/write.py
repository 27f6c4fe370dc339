"""What a rewrite leaves in the workflow's folder: `script.candidate.py`; or with
`--write`, the reviewed `script.py` in its place, the switch in `workflow.yaml` (where
the notes of `tandem new`'s llm skeleton that no longer hold are replaced by the script
skeleton's), and the evidence the pull request carries: the runs it was validated against
as fixtures in `tests/fixtures/`, and a `tests/test_script.py` that replays them (written
only when there is none)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tandem.replay import write_fixture
from tandem.replay.fixtures import FIXTURE_TEST_BODY
from tandem.scaffold.workflow import with_script_notes

from .yaml_edit import SCRIPT, set_script_coordinator

CANDIDATE = "script.candidate.py"
BRIEF = "REWRITE.md"

TEST_SCRIPT = (
    '''\
"""script.py against runs recorded in production (`tandem runs export`), offline: each
fixture's tool calls are answered from the recording; no tool runs. `tandem rewrite`
wrote the first fixtures: the runs the script was validated against. A flagged fixture is
a regression test: the script must make every recorded call but the flagged ones, and
never those."""

'''
    + FIXTURE_TEST_BODY
)


def write_candidate_file(folder: Path, script: str) -> Path:
    path = folder / CANDIDATE
    path.write_text(script, encoding="utf-8")
    return path


def write_accepted(folder: Path, script: str, fixtures: Iterable[dict[str, Any]]) -> list[Path]:
    """Write the script, switch workflow.yaml to it, and ship the fixtures with a test.
    The candidate, now script.py, goes."""
    spec = folder / "workflow.yaml"
    edited = set_script_coordinator(spec.read_text(encoding="utf-8"))  # may refuse: first
    edited = with_script_notes(edited, folder.name)
    written = [folder / SCRIPT, spec]
    (folder / SCRIPT).write_text(script, encoding="utf-8")
    spec.write_text(edited, encoding="utf-8")
    tests = folder / "tests"
    written += [write_fixture(fixture, tests / "fixtures") for fixture in fixtures]
    test = tests / "test_script.py"
    if not test.exists():
        tests.mkdir(exist_ok=True)  # no fixture made it: every run disagreed (--accept-diffs)
        test.write_text(TEST_SCRIPT, encoding="utf-8")
        written.append(test)
    (folder / CANDIDATE).unlink(missing_ok=True)
    return written
