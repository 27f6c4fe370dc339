"""`tandem replay` tells the truth: a replay that could not run says why and exits 2, and
`--model-replies` answers an llm replay's model with scripted turns. Everything is real:
`main()` in this process, the host it embeds, the `state` plugin, the official `anthropic`
client and the Messages API stand-in."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import Project
from tandem.cli.main import main
from tandem.llm.api import MISSING_KEY

PROMPT = "Count one more visit with state.increment (key: visits) and say the count."
COUNT = """
- text: "Counting."
  tool_use:
    - {name: state.increment, input: {key: visits}}
- text: "Visits: 1."
"""


@pytest.fixture
def recorded(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[Project, str]:
    """An llm run of `counter`, recorded offline with scripted model turns."""
    project.workflow("counter", prompt=PROMPT, tools=["state.*"])
    replies = project.root / "replies.yaml"
    replies.write_text(textwrap.dedent(COUNT))
    root = str(project.root)
    argv = ["--project", root, "run", "counter", "--json", "--model-replies", str(replies)]
    assert main(argv) == 0
    run_id = json.loads(capsys.readouterr().out)["id"]
    return project, run_id


def test_a_replay_without_an_api_key_could_not_run_and_exits_2(
    recorded: tuple[Project, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, run_id = recorded
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert main(["--project", str(project.root), "replay", run_id]) == 2
    out = capsys.readouterr().out
    assert f"of {run_id} (llm -> llm): could not run: {MISSING_KEY}" in out
    assert "plans differ" not in out and "missing" not in out

    many = ["--project", str(project.root), "replay", "--workflow", "counter", "--last", "1"]
    assert main(many) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"NO RUN {run_id} (llm): {MISSING_KEY}", "agreed 0 of 1, 1 could not run"]

    assert main([*many, "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["could_not_run"] == 1 and report["runs"][0]["agree"] is None
    assert report["runs"][0]["could_not_run"] == MISSING_KEY


def test_model_replies_answer_a_replays_model(
    recorded: tuple[Project, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, run_id = recorded
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    argv = ["--project", str(project.root), "replay", run_id, "--model-replies", f"run:{run_id}"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert f"model: scripted replies from run:{run_id} (no API call)" in out
    assert f"of {run_id} (llm -> llm): plans agree (1 same)" in out
    assert "warning" not in err

    # Turns that call another tool: the replay ran, and its plan differs.
    other = project.root / "other.yaml"
    other.write_text(textwrap.dedent(COUNT.replace("key: visits", "key: views")))
    argv = ["--project", str(project.root), "replay", run_id, "--model-replies", str(other)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "plans differ (1 changed)" in out
