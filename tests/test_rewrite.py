"""`tandem rewrite`, the pattern's step 3, on pr_merged: the model (the Messages API
stand-in, scripted with a script) writes script.py from the prompt, tools, files and
recorded runs; the recorded runs, replayed by a real daemon through a candidate folder,
decide whether it is accepted; `--write` ships it with its fixtures; `--brief` writes the
material for a person instead.

The recorded runs are made first, by the LLM coordinator against the Slack and GitHub
stand-ins, on a copy of pr_merged set back to `coordinator: llm`: a webhook for pull
request 101, one for 104, and a sweep that also reacted to a message whose pull request is
open, flagged by a person (the story of workflows/pr_merged/tests/fixtures)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from conftest import REPO, tandem
from pr_merged_fixtures import SETTINGS, Setup, webhook_trigger
from tandem.cli.common import UsageError
from tandem.cli.rewrite import add_parser, cmd_rewrite
from tandem.config import load_config
from tandem.rewrite import RewriteError, extract_script, set_script_coordinator
from tandem.testing import Reply
from tandem.testing.pr_merged import webhook_conversation
from tandem.workflows import load_workflow
from tandem_sdk._pb import control_pb2
from tandem_sdk.testing import assert_replays

GOOD = (REPO / "workflows" / "pr_merged" / "script.py").read_text()
# Reacts to open pull requests too: the very call a person flagged in the sweep.
BAD = GOOD.replace(
    '    reactions = settings["reactions"]\n',
    '    reactions = {**settings["reactions"], "open": settings["reactions"]["merged"]}\n',
)
assert BAD != GOOD
FLAGGED_CALL = 'slack.add_reaction(channel="eng", ts="1764460860.000200", name="merged")'
RECORDED_SWEEP = json.loads(
    (REPO / "workflows/pr_merged/tests/fixtures/llm-sweep-flagged.json").read_text()
)
REASON = RECORDED_SWEEP["flagged"]["reason"]

# pr_merged as it was before its rewrite: coordinated by the model, with comments to keep.
LLM_YAML = """\
name: pr_merged
description: React in Slack to the messages that link a pull request once it has merged or closed
triggers:
  - manual: {}                   # a sweep of the channel's recent messages
  - webhook:                     # GitHub calls this when a pull request closes
      path: /hooks/github
      secret_env: GITHUB_WEBHOOK_SECRET
      events: [pull_request]
      actions: [closed]
# The model follows prompt.md until a reviewed script takes over.
coordinator: llm
prompt: prompt.md
tools: [slack.get_messages, slack.add_reaction, github.pr_status]
files:
  settings.json: files/settings.json
limits: {timeout_s: 120, max_tool_calls: 200, max_turns: 12}
"""


def answer(script: str) -> Reply:
    return Reply.text(f"```python\n{script}```\n")


def sweep_conversation() -> list[Reply]:
    """The model's turns of the flagged sweep, from the recorded fixture: settings first,
    then each stretch of calls to one tool as parallel tool use, then its answer."""
    replies = [Reply.tool_use(("files__read", {"path": "settings.json"}))]
    stretch: list[tuple[str, dict[str, object]]] = []
    for call in RECORDED_SWEEP["calls"]:
        name = call["tool"].replace(".", "__")
        if stretch and stretch[-1][0] != name:
            replies.append(Reply.tool_use(*stretch))
            stretch = []
        stretch.append((name, call["arguments"]))
    replies.append(Reply.tool_use(*stretch))
    return [*replies, Reply.text(RECORDED_SWEEP["output"])]


@dataclass
class Recorded:
    setup: Setup
    folder: Path
    pristine: Path
    webhook_101: str
    webhook_104: str
    sweep: str

    @property
    def runs(self) -> list[str]:
        return [self.webhook_101, self.webhook_104, self.sweep]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp("rewrite")
    setup = Setup(root / "project")
    try:
        folder = setup.project.root / "workflows" / "pr_merged"
        (folder / "script.py").unlink()
        shutil.rmtree(folder / "tests")
        (folder / "workflow.yaml").write_text(LLM_YAML)
        assert list(setup.daemon.client.stub.Reload(control_pb2.ReloadRequest()).errors) == []
        ids = []
        for replies, trigger in (
            (webhook_conversation(101, SETTINGS), webhook_trigger(101, "d-101")),
            (webhook_conversation(104, SETTINGS), webhook_trigger(104, "d-104")),
            (sweep_conversation(), None),
        ):
            setup.slack.reset()
            setup.model.add(*replies)
            record = setup.run(trigger, "llm")
            assert record.status == "succeeded", record.error
            ids.append(record.id)
        assert setup.model.problems == []
        # A person flags the sweep's reaction to the message whose pull request is open.
        calls = setup.daemon.client.export(ids[2])["calls"]
        wrong = [i for i, c in enumerate(calls) if c["arguments"].get("ts") == "1764460860.000200"]
        assert len(wrong) == 1 and calls[wrong[0]]["tool"] == "slack.add_reaction"
        setup.daemon.client.flag(ids[2], REASON, wrong)
        pristine = root / "pristine"
        shutil.copytree(folder, pristine)
        yield Recorded(setup, folder, pristine, *ids)
    finally:
        setup.close()


@pytest.fixture
def fresh(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """The workflow folder as it was, no candidate, a fresh model script, and the CLI
    pointed at the Messages API stand-in."""
    shutil.rmtree(recorded.folder)
    shutil.copytree(recorded.pristine, recorded.folder)
    shutil.rmtree(recorded.setup.project.config.state_dir / "rewrite", ignore_errors=True)
    recorded.setup.model.reset()
    recorded.setup.slack.reset()
    for name, value in recorded.setup.model.env.items():
        monkeypatch.setenv(name, value)
    return recorded


def rewrite(recorded: Recorded, *args: str, workflow: str = "pr_merged") -> int:
    """`tandem rewrite` in this process, its arguments parsed by its own parser."""
    parser = argparse.ArgumentParser(prog="tandem")
    add_parser(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["rewrite", workflow, *args])
    return cmd_rewrite(load_config(recorded.setup.project.root), parsed)


def table_of(stdout: str) -> dict[str, str]:
    """run id -> the table's verdict on it, from the last table printed."""
    rows = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] in ("agree", "DIFFER"):
            rows[words[1]] = line
    return rows


def test_a_good_script_agrees_with_every_run_and_is_left_as_a_candidate(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh.setup.model.add(answer(GOOD))
    assert rewrite(fresh) == 0
    out = capsys.readouterr().out
    rows = table_of(out)
    assert set(rows) == set(fresh.runs)
    assert all(line.startswith("agree ") for line in rows.values()), out
    assert "llm, flagged" in rows[fresh.sweep]
    assert "agreed 3 of 3" in out
    assert (fresh.folder / "script.candidate.py").read_text() == GOOD
    assert not (fresh.folder / "script.py").exists(), "never the reviewed script unless --write"
    assert (fresh.folder / "workflow.yaml").read_text() == LLM_YAML
    candidate = fresh.setup.project.config.state_dir / "rewrite" / "pr_merged"
    assert (candidate / "script.py").read_text() == GOOD
    assert yaml.safe_load((candidate / "workflow.yaml").read_text())["coordinator"] == "script"
    replays = fresh.setup.daemon.client.runs("pr_merged", "", 50, mode="replay")
    assert {r.source_run for r in replays} >= set(fresh.runs)
    assert fresh.setup.slack.reactions_added == [], "a replay performs no side effect"

    # What the model was asked, in one request, with the workflow's model.
    [request] = fresh.setup.model.requests
    assert request.body["model"] == "claude-sonnet-5-5"
    system = request.body["system"]
    assert "exactly one ```python code block" in system
    assert "def handler(trigger, tools, virtual_files, subagent)" in system
    assert ".type" in system and "ToolError" in system
    [message] = request.messages
    text = message["content"]
    assert "Never add a reaction the message already has" in text  # prompt.md
    assert "### `slack.add_reaction` (side effects, not destructive, idempotent)" in text
    assert "### `github.pr_status` (read-only)" in text
    assert '"look_back": 50' in text  # settings.json
    assert all(run in text for run in fresh.runs)
    assert REASON in text and f"FLAGGED {FLAGGED_CALL}" in text
    assert "not_found" in text  # the recorded error of the unknown pull request
    assert fresh.setup.model.problems == []


def test_write_ships_the_script_with_its_fixtures_and_a_test(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh.setup.model.add(answer(GOOD))
    assert rewrite(fresh, "--write") == 0
    out = capsys.readouterr().out
    assert "agreed 3 of 3" in out
    assert (fresh.folder / "script.py").read_text() == GOOD
    assert not (fresh.folder / "script.candidate.py").exists(), "accepted: it is script.py now"
    text = (fresh.folder / "workflow.yaml").read_text()
    assert "# The model follows prompt.md until a reviewed script takes over." in text
    assert "coordinator: script\ncoordinator_script: script.py\nprompt: prompt.md\n" in text
    assert text.replace("coordinator: script\ncoordinator_script: script.py\n", "") == (
        LLM_YAML.replace("coordinator: llm\n", "")
    ), "only the two keys changed"
    tools = ["slack.get_messages", "slack.add_reaction", "github.pr_status"]
    workflow = load_workflow(fresh.folder, tools)
    assert workflow.spec.coordinator == "script" and workflow.spec.prompt == "prompt.md"

    fixtures = sorted((fresh.folder / "tests" / "fixtures").glob("*.json"))
    assert [f.name for f in fixtures] == sorted(f"pr_merged-{run}.json" for run in fresh.runs)
    flagged = json.loads(
        (fresh.folder / "tests/fixtures" / f"pr_merged-{fresh.sweep}.json").read_text()
    )
    assert flagged["flagged"]["reason"] == REASON
    for fixture in fixtures:
        assert_replays(fresh.folder / "script.py", fixture)
    test = fresh.folder / "tests" / "test_script.py"
    assert "assert_replays(SCRIPT, fixture)" in test.read_text()
    for path in [fresh.folder / "script.py", fresh.folder / "workflow.yaml", test, *fixtures]:
        assert f"wrote {path}" in out
    # The evidence passes as the pull request's CI would run it.
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        cwd=fresh.folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "3 passed" in tested.stdout


def test_a_script_that_repeats_the_flagged_call_differs_and_is_not_written(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh.setup.model.add(answer(BAD))
    assert rewrite(fresh, "--repairs", "0", "--write") == 1
    captured = capsys.readouterr()
    rows = table_of(captured.out)
    assert rows[fresh.sweep].startswith("DIFFER"), captured.out
    assert "1 repeated" in rows[fresh.sweep] and "made 1 flagged call(s) again" in rows[fresh.sweep]
    assert rows[fresh.webhook_101].startswith("agree ")
    assert rows[fresh.webhook_104].startswith("agree ")
    assert "agreed 2 of 3" in captured.out
    assert "not writing script.py: 1 of 3 recorded run(s) disagree" in captured.err
    assert "--accept-diffs" in captured.err
    assert (fresh.folder / "script.candidate.py").read_text() == BAD
    assert not (fresh.folder / "script.py").exists()
    assert not (fresh.folder / "tests").exists()
    assert (fresh.folder / "workflow.yaml").read_text() == LLM_YAML
    assert len(fresh.setup.model.requests) == 1, "--repairs 0: no repair turn"


def test_accept_diffs_writes_and_ships_only_the_runs_that_agree(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh.setup.model.add(answer(BAD))
    assert rewrite(fresh, "--repairs", "0", "--write", "--accept-diffs") == 1
    captured = capsys.readouterr()
    assert (fresh.folder / "script.py").read_text() == BAD
    shipped = {f.stem for f in (fresh.folder / "tests" / "fixtures").glob("*.json")}
    assert shipped == {f"pr_merged-{fresh.webhook_101}", f"pr_merged-{fresh.webhook_104}"}
    assert f"no fixture for {fresh.sweep}" in captured.err


def test_a_repair_turn_sends_the_diffs_and_takes_the_corrected_script(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh.setup.model.add(answer(BAD), answer(GOOD))
    assert rewrite(fresh) == 0
    captured = capsys.readouterr()
    first, second = captured.out.split("agreed 2 of 3")
    assert table_of(first)[fresh.sweep].startswith("DIFFER")
    assert "agreed 3 of 3" in second
    assert all(line.startswith("agree ") for line in table_of(second).values())
    assert "repair 1 of 1" in captured.err
    assert (fresh.folder / "script.candidate.py").read_text() == GOOD

    _, repair = fresh.setup.model.requests
    assert [m["role"] for m in repair.messages] == ["user", "assistant", "user"]
    assert repair.messages[1]["content"] == f"```python\n{BAD}```\n"
    feedback = repair.messages[2]["content"]
    assert f"### Run `{fresh.sweep}` (llm, flagged: {REASON!r})" in feedback
    assert f"! {FLAGGED_CALL}  (flagged call, made again)" in feedback  # the diff's line
    assert f"made again, which it must never make:\n    {FLAGGED_CALL}" in feedback
    assert fresh.webhook_101 not in feedback, "only the runs that disagree"
    assert "exactly one ```python code block" in feedback
    assert fresh.setup.model.problems == []


def test_a_candidate_that_raises_is_repaired_from_its_traceback(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = GOOD.replace('settings["look_back"]', 'settings["lookback"]')
    fresh.setup.model.add(answer(broken), answer(GOOD))
    assert rewrite(fresh) == 0
    out = capsys.readouterr().out
    assert "agreed 0 of 3" in out and "raised KeyError: 'lookback'" in out
    feedback = fresh.setup.model.requests[1].messages[2]["content"]
    assert "Your script raised:" in feedback and "KeyError: 'lookback'" in feedback


def test_a_candidate_that_does_not_load_differs_everywhere_and_is_repaired(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh.setup.model.add(answer("def handler(trigger, tools):\n    return None\n"), answer(GOOD))
    assert rewrite(fresh) == 0
    out = capsys.readouterr().out
    assert "agreed 0 of 3" in out and "agreed 3 of 3" in out
    feedback = fresh.setup.model.requests[1].messages[2]["content"]
    assert "the candidate could not run" in feedback
    assert "takes exactly (trigger, tools, virtual_files, subagent)" in feedback


def test_brief_writes_the_material_and_asks_no_model(
    fresh: Recorded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    assert rewrite(fresh, "--brief") == 0
    brief = (fresh.folder / "REWRITE.md").read_text()
    assert brief.startswith("# Rewrite `pr_merged` as a script")
    assert "Never add a reaction the message already has" in brief  # the prompt
    assert "### `slack.get_messages` (read-only)" in brief  # tools, with their schemas
    assert '"channel": {' in brief and '"required": [' in brief
    assert '"look_back": 50' in brief  # the virtual file
    assert "## Its guards (`guards.py`)" in brief  # the guards, which refuse a script too
    assert "def slack_add_reaction(call, history):" in brief and "GuardRefused" in brief
    assert all(run in brief for run in fresh.runs)  # the runs
    assert REASON in brief and f"FLAGGED {FLAGGED_CALL}" in brief
    assert "def handler(trigger, tools, virtual_files, subagent):" in brief  # the SDK
    assert "tandem replay --workflow candidate/pr_merged" in brief  # how to check
    assert fresh.setup.model.requests == []

    elsewhere = tmp_path / "brief.md"
    assert rewrite(fresh, "--brief", str(elsewhere), "--sample", "1") == 0
    assert fresh.sweep in elsewhere.read_text()  # the flagged run is sampled first
    assert "Recorded runs (1 of the 3 to agree with)" in elsewhere.read_text()
    assert fresh.setup.model.requests == []

    # The same through the CLI as a user runs it, against the daemon.
    cli = tandem(fresh.setup.project, "rewrite", "pr_merged", "--brief", str(tmp_path / "cli.md"))
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "cli.md").read_text().startswith("# Rewrite `pr_merged` as a script")


def test_an_excluded_run_is_neither_sampled_nor_validated_against(
    fresh: Recorded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    client = fresh.setup.daemon.client
    client.exclude(fresh.webhook_104, "an experiment")
    try:
        assert rewrite(fresh, "--brief", str(tmp_path / "brief.md")) == 0
    finally:
        client.exclude(fresh.webhook_104, include=True)
    brief = (tmp_path / "brief.md").read_text()
    assert fresh.webhook_104 not in brief
    assert fresh.webhook_101 in brief and fresh.sweep in brief
    assert "of the 2 to agree with" in brief


def test_an_answer_without_a_code_block_is_a_clear_error(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh.setup.model.add(Reply.text("I would read the settings first, then sweep the channel."))
    assert rewrite(fresh) == 1
    err = capsys.readouterr().err
    assert "the model's answer has no ```python code block" in err
    assert "I would read the settings first" in err
    assert not (fresh.folder / "script.candidate.py").exists()
    assert not (fresh.setup.project.config.state_dir / "rewrite").exists()


def test_usage_errors(fresh: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    idle = fresh.setup.project.root / "workflows" / "idle"
    idle.mkdir(exist_ok=True)
    (idle / "prompt.md").write_text("Read #eng.\n")
    (idle / "workflow.yaml").write_text(
        "coordinator: llm\nprompt: prompt.md\ntools: [slack.get_messages]\n"
    )
    fresh.setup.daemon.client.stub.Reload(control_pb2.ReloadRequest())
    with pytest.raises(UsageError, match=r"no recorded live runs.*`tandem run idle`"):
        rewrite(fresh, workflow="idle")
    with pytest.raises(UsageError, match="no workflow 'nothing'"):
        rewrite(fresh, workflow="nothing")
    with pytest.raises(UsageError, match="--accept-diffs goes with --write"):
        rewrite(fresh, "--accept-diffs")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(UsageError, match=r"ANTHROPIC_API_KEY is not set.*--brief"):
        rewrite(fresh)
    assert fresh.setup.model.requests == []


def test_the_script_is_taken_from_the_block_that_defines_the_handler() -> None:
    text = (
        "Here it is.\n```python\nimport json\n```\nand\n```python\n"
        "def handler(trigger, tools, virtual_files, subagent):\n    return 1\n```\nDone."
    )
    assert extract_script(text).startswith("def handler(")
    with pytest.raises(RewriteError, match="cut off at max_tokens"):
        extract_script("```python\ndef handler(", cut_off=True, max_tokens=10)


def test_workflow_yaml_is_switched_in_place() -> None:
    text = "name: w  # the name\ncoordinator: llm          # who decides\nprompt: p.md\n"
    assert set_script_coordinator(text) == (
        "name: w  # the name\ncoordinator: script       # who decides\n"
        "coordinator_script: script.py\nprompt: p.md\n"
    )
    again = set_script_coordinator("coordinator: llm\ncoordinator_script: old.py\nshadow: script\n")
    assert again == "coordinator: script\ncoordinator_script: script.py\nshadow: llm\n"
    with pytest.raises(RewriteError, match="by hand"):
        set_script_coordinator("coordinator:\n  llm\n")


# -- offline: the model's answer from a file ---------------------------------------------------


@pytest.fixture
def offline(fresh: Recorded, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """No key, no gateway: nothing to ask but the file."""
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    return fresh


def test_an_answer_file_rewrites_offline(
    offline: Recorded, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    answer_file = tmp_path / "answer.md"
    answer_file.write_text(f"Here is the script.\n\n```python\n{GOOD}```\n")
    assert rewrite(offline, "--model-replies", str(answer_file)) == 0
    captured = capsys.readouterr()
    assert f"model: scripted replies from {answer_file} (no API call)" in captured.err
    assert "agreed 3 of 3" in captured.out
    assert "warning" not in captured.err
    assert (offline.folder / "script.candidate.py").read_text() == GOOD
    assert offline.setup.model.requests == [], "no model was asked"

    script = tmp_path / "script.py"  # a script written by hand is the answer too
    script.write_text(BAD)
    assert rewrite(offline, "--model-replies", str(script)) == 1  # one answer: no repair
    captured = capsys.readouterr()
    assert "agreed 2 of 3" in captured.out
    assert "repair" not in captured.err and "warning" not in captured.err
    assert (offline.folder / "script.candidate.py").read_text() == BAD


def test_answer_turns_serve_the_script_then_the_repair_and_json_tells_the_outcome(
    offline: Recorded, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    turns = tmp_path / "answers.yaml"
    turns.write_text(
        yaml.safe_dump([{"text": f"```python\n{BAD}```\n"}, {"text": f"```python\n{GOOD}```"}])
    )
    assert rewrite(offline, "--model-replies", str(turns), "--write", "--json") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the document alone
    assert (result["workflow"], result["model"]) == ("pr_merged", "claude-sonnet-5-5")
    assert (result["agreed"], result["repairs"]) == (True, 1)
    assert {r["run"] for r in result["runs"]} == set(offline.runs)
    assert all(r["agree"] for r in result["runs"])
    assert result["candidate"] == str(offline.folder / "script.candidate.py")
    assert str(offline.folder / "script.py") in result["written"]
    assert (offline.folder / "script.py").read_text() == GOOD
    assert "agreed 2 of 3" in captured.err and "repair 1 of 1" in captured.err

    tools = tmp_path / "tools.yaml"
    tools.write_text("- tool_use: [{name: slack.get_messages, input: {}}]\n")
    with pytest.raises(UsageError, match="turn 1: a rewrite's answer is text"):
        rewrite(offline, "--model-replies", str(tools))


def test_write_leaves_no_note_of_the_llm_skeleton_that_no_longer_holds(tmp_path: Path) -> None:
    from conftest import Project
    from tandem.rewrite import write_accepted, write_candidate_file
    from tandem.scaffold import scaffold_workflow
    from tandem.scaffold.workflow import SCRIPT_PY

    made = scaffold_workflow(Project(tmp_path / "project").config, "ask", coordinator="llm")
    before = (made.folder / "workflow.yaml").read_text()
    assert "# coordinator_script: script.py" in before and "No tests/" in before
    write_candidate_file(made.folder, SCRIPT_PY)
    write_accepted(made.folder, SCRIPT_PY, [])
    text = (made.folder / "workflow.yaml").read_text()
    assert "# coordinator_script" not in text and "uncomment" not in text.split("prompt:")[1]
    assert "No tests/" not in text and "tandem rewrite ask --write" not in text
    assert "# tests/test_script.py replays tests/fixtures/*.json against script.py" in text
    assert "\nprompt: prompt.md               # the model's instructions" in text  # still true
    workflow = load_workflow(made.folder, ["state.increment", "files.read"])
    assert (workflow.spec.coordinator, workflow.spec.coordinator_script) == ("script", "script.py")
    assert sorted(p.name for p in made.folder.iterdir()) == [
        "files",
        "prompt.md",
        "script.py",
        "tests",
        "workflow.yaml",
    ]


# -- --branch and --pr: the rewrite as a branch of the project's repository, and a pull request


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def committed(recorded: Recorded, remote: Path | None = None) -> Path:
    """The project as a git repository on main, everything committed but tandem's state
    folder (which is not ignored: --branch leaves it aside), with `remote` as its origin
    when given."""
    root = recorded.setup.project.root
    shutil.rmtree(root / ".git", ignore_errors=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Ada")
    git(root, "config", "user.email", "ada@example.com")
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "add", "-A", "--", ".", ":(exclude).tandem")
    git(root, "commit", "-q", "-m", "the project")
    if remote is not None:
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
        git(root, "remote", "add", "origin", str(remote))
    return root


def test_branch_and_pr_commit_push_and_open_the_pull_request_with_the_evidence(
    fresh: Recorded, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = committed(fresh, tmp_path / "remote.git")
    # On `mine`, which tracks origin's main and has a commit not pushed; pushes go to fork.
    git(root, "push", "-q", "-u", "origin", "main")
    git(root, "checkout", "-q", "-b", "mine", "--track", "origin/main")
    (root / "NOTES.md").write_text("a local note\n")
    git(root, "add", "NOTES.md")
    git(root, "commit", "-q", "-m", "a local commit")
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "fork.git")], check=True)
    git(root, "remote", "add", "fork", str(tmp_path / "fork.git"))
    git(root, "config", "remote.pushDefault", "fork")
    head = git(root, "rev-parse", "HEAD")
    fresh.setup.model.add(answer(GOOD))
    branch = "rewrite/pr-merged"
    fresh.setup.github.push_branch(branch)  # the stand-in is no git remote: it is told
    assert rewrite(fresh, "--branch", branch, "--pr", "--repo", "acme/widgets") == 0
    out = capsys.readouterr().out

    # The current branch, its index and the work tree are as they were.
    assert git(root, "symbolic-ref", "--short", "HEAD") == "mine"
    assert git(root, "rev-parse", "HEAD") == head
    assert git(root, "status", "--porcelain", "--", ".", ":(exclude).tandem") == ""
    assert (fresh.folder / "workflow.yaml").read_text() == LLM_YAML
    assert not (fresh.folder / "script.py").exists()
    assert not (fresh.folder / "script.candidate.py").exists()

    # The branch: one commit on HEAD with what --write writes.
    commit = git(root, "rev-parse", branch)
    assert git(root, "rev-parse", f"{branch}^") == head
    assert f"branch {branch}: commit {commit} off mine" in out
    assert "holds mine's 1 commit(s) not on main's upstream" in out
    where = "workflows/pr_merged"
    changed = git(root, "diff", "--name-status", f"mine..{branch}").splitlines()
    fixtures = [f"A\t{where}/tests/fixtures/pr_merged-{run}.json" for run in fresh.runs]
    written = [f"A\t{where}/script.py", f"A\t{where}/tests/test_script.py"]
    assert sorted(changed) == sorted([*written, f"M\t{where}/workflow.yaml", *fixtures])
    assert git(root, "show", f"{branch}:{where}/script.py") + "\n" == GOOD
    spec = yaml.safe_load(git(root, "show", f"{branch}:{where}/workflow.yaml"))
    assert spec["coordinator"] == "script"
    assert "a reviewed script takes over" in git(root, "log", "-1", "--format=%s", branch)

    # Pushed where git pushes (remote.pushDefault), not to the upstream's remote.
    assert git(tmp_path / "fork.git", "rev-parse", f"refs/heads/{branch}") == commit
    assert git(tmp_path / "remote.git", "branch", "--list", branch) == ""

    # The pull request, as GitHub's API takes it, opened through the host by a run.
    [call] = [c for c in fresh.setup.github.calls if c.method == "POST"]
    assert (call.path, call.status) == ("/repos/acme/widgets/pulls", 201)
    sent = call.body or {}
    assert (sent["head"], sent["base"], sent["draft"]) == (branch, "main", False)  # upstream's
    assert "made off `mine`, which has 1 commit(s) not pushed to its upstream" in sent["body"]
    assert sent["title"] == "pr_merged: a reviewed script takes over from the prompt"
    body = sent["body"]
    assert "**3 of 3** agree" in body
    for run in fresh.runs:
        assert f"| `{run}` | llm |" in body
    assert f"| `{fresh.sweep}` | llm | yes | agree |" in body
    assert f"- `{fresh.sweep}` flagged (call " in body and REASON in body
    assert "No shadow ran" in body
    # pr_merged's guard, and the sweep's reaction to the open #103 it refused (the ledger's).
    guard = "- `slack_add_reaction`: React :merged: only on a message this run read, that"
    assert guard in body and "(refused 1 call in the ledger's runs)" in body
    assert f"- `{where}/script.py`" in body
    assert "runs a day" in body, "three runs of the prompt: a rate, a projection"
    assert fresh.setup.github.problems == []
    [opened] = fresh.setup.daemon.client.runs("open_pull_request")
    assert (opened.status, opened.coordinator) == ("succeeded", "script")
    assert opened.output["number"] == 106 and opened.output["head"] == branch
    assert f"pull request #106 {opened.output['url']}" in out
    # A client names no other folder to run live: the project's workflows run by name.
    with pytest.raises(grpc.RpcError) as refused:
        fresh.setup.daemon.client.trigger("pr_merged", None, None, workflow_path=fresh.folder)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a workflow tandem ships" in str(refused.value.details())


def test_branch_refuses_what_it_cannot_commit_to(
    fresh: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fresh.setup.project.root
    shutil.rmtree(root / ".git", ignore_errors=True)
    with pytest.raises(UsageError, match="is not in a git repository"):
        rewrite(fresh, "--branch", "rewrite")
    git(root, "init", "-q", "-b", "main")
    with pytest.raises(UsageError, match="has no commit yet on main"):
        rewrite(fresh, "--branch", "rewrite")

    committed(fresh)  # no remote
    git(root, "checkout", "-q", "--detach")
    with pytest.raises(UsageError, match="is on a detached HEAD"):
        rewrite(fresh, "--branch", "rewrite")
    git(root, "checkout", "-q", "main")
    (fresh.folder / "prompt.md").write_text("Changed, not committed.\n")
    with pytest.raises(UsageError, match=r"uncommitted changes: workflows/pr_merged/prompt.md"):
        rewrite(fresh, "--branch", "rewrite")
    git(root, "checkout", "-q", "--", "workflows/pr_merged/prompt.md")

    for name in ("@{-1}", "refs/heads/x", "a..b"):
        with pytest.raises(UsageError, match="is not a valid branch name"):
            rewrite(fresh, "--branch", name)
    git(root, "branch", "taken")
    with pytest.raises(UsageError, match="a branch 'taken' already exists"):
        rewrite(fresh, "--branch", "taken")
    with pytest.raises(UsageError, match="has no remote to push to"):
        rewrite(fresh, "--branch", "rewrite", "--pr", "--repo", "acme/widgets")
    assert fresh.setup.model.requests == [], "refused before the model is asked"

    # A candidate that disagrees is left out of the work tree: the retry is not refused.
    fresh.setup.model.add(answer(BAD))
    assert rewrite(fresh, "--branch", "rewrite", "--repairs", "0") == 1
    left = fresh.setup.project.config.state_dir / "rewrite" / "pr_merged.script.candidate.py"
    assert f"candidate: {left}" in capsys.readouterr().out and left.read_text() == BAD
    assert not (fresh.folder / "script.candidate.py").exists()
    fresh.setup.model.add(answer(GOOD))  # without --pr, no remote is needed
    assert rewrite(fresh, "--branch", "rewrite") == 0
    assert "next: review it (git diff main...rewrite)" in capsys.readouterr().out
    assert git(root, "show", "rewrite:workflows/pr_merged/script.py") + "\n" == GOOD
    assert git(root, "status", "--porcelain", "--", ".", ":(exclude).tandem") == ""


def test_the_pull_request_description_holds_the_evidence(tmp_path: Path) -> None:
    from tandem.escalation import ESCALATED, EVENT
    from tandem.ledger import Group
    from tandem.rewrite.pull_request import description
    from tandem.rewrite.validate import Verdict
    from tandem.store import Event, RunRecord
    from tandem_sdk.plan import PlannedCall, diff_plans

    folder = tmp_path / "pr_merged"
    folder.mkdir()
    (folder / "guards.py").write_text(
        'def slack_add_reaction(call, history):\n    """React :merged: only on merged PRs.\n\n'
        '    More.\n    """\n\n\ndef _helper():\n    pass\n'
    )
    call = PlannedCall("slack.add_reaction", {"ts": "1", "name": "merged"})
    flagged = RunRecord("r-flag", "pr_merged", "v1", "llm", None, "succeeded")
    flagged.flag = {"reason": "reacted | to an open PR", "calls": [2]}
    refusal = {"call": 4, "guard": "slack_add_reaction", "tool": "slack.add_reaction"}
    denial = {"call": 2, "tool": "slack.add_reaction", "approved": False, "reason": "not yet"}
    flagged.events = [
        Event(4, 0.0, "guard.refused", {**refusal, "reason": "PR #103 is open"}),
        Event(6, 0.0, "approval.decided", denial),
        Event(7, 0.0, "approval.decided", {**denial, "approved": True, "reason": "fine"}),
    ]
    escalated = RunRecord("r-esc", "pr_merged", "v2", ESCALATED, None, "succeeded")
    escalated.events = [Event(3, 0.0, EVENT, {"reason": "a PR in another repo"})]
    verdicts = [
        Verdict(flagged, "p1", diff_plans([call], [call])),
        Verdict(escalated, "p2", diff_plans([call], []), error="Traceback\nKeyError: 'x'"),
    ]
    day = 86_400.0
    llm = Group("pr_merged", "llm", "v1", runs=5, first_run=0.0, last_run=2 * day, cost=0.5)
    llm = Group(**{**llm.__dict__, "totals": {"input_tokens": 9000, "output_tokens": 1000}})
    shadow = Group("pr_merged", "script", "v2", shadows=4, shadows_agreed=3)
    files = ["workflows/pr_merged/script.py"]
    refused = {"slack_add_reaction": 2, "retired": 1}  # the ledger's, per guard
    text = description(folder, verdicts, [llm.to_json(), shadow.to_json()], files, refused)

    assert "**1 of 2** agree" in text
    assert "| `r-flag` | llm | yes | agree | 1 same |" in text
    assert f"| `r-esc` | {ESCALATED} |  | **differ** | 1 missing; raised KeyError: 'x' |" in text
    assert "| script | `v2` | 4 | 3 |" in text
    assert (
        "- `slack_add_reaction`: React :merged: only on merged PRs. (refused 2 calls in the"
        " ledger's runs)" in text
    )
    assert "- `retired`: no longer in guards.py (refused 1 call in the ledger's runs)" in text
    assert "_helper" not in text
    assert "- `r-flag` flagged (call 3): reacted | to an open PR" in text
    assert "- `r-esc` escalated to the model: a PR in another repo" in text
    refused_line = (
        "- `r-flag` had a call refused by guard `slack_add_reaction` (slack.add_reaction)"
    )
    assert f"{refused_line}: PR #103 is open" in text
    assert "- `r-flag` had a call denied (slack.add_reaction): not yet" in text
    assert "fine" not in text, "an approved call is no wrong one"
    # 5 runs over 2 days: 2 a day, 2,000 tokens and $0.10 a run; 30 days of it.
    assert "2.0 runs a day (5 runs of the prompt, version `v1`, over 2.0 days)" in text
    assert "saves the 2,000 tokens a run and $0.1000 the model spent" in text
    assert "about 120,000 tokens and $6.00 every 30 days" in text
    assert "- `workflows/pr_merged/script.py`" in text

    lone = Group("pr_merged", "llm", "v1", runs=1, first_run=0.0, last_run=0.0)
    empty = description(tmp_path / "none", [], [lone.to_json()], [], {})
    assert "No projection" in empty and "no guards" in empty and "No shadow ran" in empty
    assert "None of the runs was flagged, refused or escalated." in empty


def test_the_github_repository_is_read_from_the_remote_url() -> None:
    from tandem.rewrite.branch import github_hosts, github_repository

    enterprise = github_hosts({"GITHUB_API_URL": "https://GHE.example.com/api/v3"})
    assert enterprise == {"github.com", "ghe.example.com"}
    for url in (
        "https://github.com/acme/widgets.git",
        "https://github.com/acme/widgets",
        "https://x-access-token:abc@github.com/acme/widgets.git",
        "git@github.com:acme/widgets.git",
        "ssh://git@github.com:22/acme/widgets.git",
        "https://ghe.example.com/acme/widgets/",
    ):
        assert github_repository(url, enterprise) == ("acme", "widgets"), url
    assert github_repository("https://github.com/acme/my.repo.git") == ("acme", "my.repo")
    assert github_hosts({"GITHUB_API_URL": "https://api.github.com"}) == {"github.com"}
    for url in (
        "/srv/git/widgets.git",
        "file:///srv/widgets",
        "https://host/a/b/c",
        "https://ghe.example.com/acme/widgets/",  # not GitHub unless the environment says so
        "git@gitlab.com:acme/widgets.git",
    ):
        assert github_repository(url) is None, url


def test_the_pull_request_goes_to_the_repository_of_the_push_url(tmp_path: Path) -> None:
    from tandem.rewrite.ship import prepare

    root = tmp_path / "project"
    (root / "workflows" / "w").mkdir(parents=True)
    (root / "workflows" / "w" / "workflow.yaml").write_text("name: w\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=A", "-c", "user.email=a@b", "add", "-A")
    git(root, "-c", "user.name=A", "-c", "user.email=a@b", "commit", "-q", "-m", "w")
    git(root, "remote", "add", "origin", "https://github.com/acme/upstream.git")
    git(root, "remote", "set-url", "--push", "origin", "git@github.com:ada/fork.git")
    target = prepare(root / "workflows" / "w", "rewrite", pr=True, repo=None)
    assert (target.remote, target.github, target.repository.base) == (
        "origin",
        ("ada", "fork"),
        "main",
    )
