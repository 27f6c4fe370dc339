"""script.py against runs recorded in production (`tandem runs export`), offline: each
fixture's tool calls are answered from the recording, nothing reaches Slack or GitHub.

- llm-webhook-pr101: the LLM coordinator on a webhook delivery; the script must make
  the same calls (in any order).
- llm-sweep-flagged: the LLM swept the channel and also reacted to a message whose pull
  request is open; a person flagged that call. The script must make every other call and
  never that one.
- script-sweep: the script's own earlier run; same calls, same output.
"""

from pathlib import Path

import pytest
from tandem_sdk.testing import assert_replays

HERE = Path(__file__).parent
SCRIPT = HERE.parent / "script.py"
FIXTURES = sorted((HERE / "fixtures").glob("*.json"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_the_script_replays_recorded_runs(fixture: Path) -> None:
    assert_replays(SCRIPT, fixture)


def test_there_are_fixtures() -> None:
    assert {f.stem for f in FIXTURES} >= {"llm-webhook-pr101", "llm-sweep-flagged", "script-sweep"}
