"""`tandem run --model-replies`: an llm run answered by scripted turns, offline.

Everything is real: the CLI's `cmd_run` in this process, the host it embeds, the `state`
plugin, the official `anthropic` client, and the Messages API stand-in it starts. `cmd_run`
is called with the Namespace `build_parser` gives `tandem run ... --model-replies X`
(`run_args`), and `main()` with an argv where the exit code is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project, eventually, tandem
from tandem.cli.common import UsageError
from tandem.cli.main import main
from tandem.cli.model_replies import ScriptedModel, parse_turns, read_replies, replies_from_run
from tandem.cli.run import cmd_run
from tandem.replay import attempted_plan
from tandem.store import RunRecord, RunStore
from tandem.testing.closing import Closing
from tandem.testing.daemon import TANDEM
from tandem.testing.github_api import GitHubStandIn, pull_request_event
from tandem.testing.pr_merged import webhook_conversation
from tandem.testing.replies import Reply
from tandem.testing.slack_api import SlackStandIn

PROMPT = "Count one more visit with state.increment (key: visits) and say the count."
COUNT = """
- text: "Counting."
  tool_use:
    - {name: state.increment, input: {key: visits}}
- text: "Visits: 1."
"""
# Waits (as the daemon's run) until the model (as the embedded host's run) says go.
WAITS_FOR_GO = """
import time

def handler(trigger, tools, virtual_files, subagent):
    for _ in range(300):
        if tools.state.get(key="go"):
            return "saw go"
        time.sleep(0.1)
    return "no go"
"""


@pytest.fixture
def counter(project: Project) -> Project:
    project.workflow("counter", prompt=PROMPT, tools=["state.*"])
    return project


@pytest.fixture(autouse=True)
def real_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A key of the user's own, which the run must neither use nor lose."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-the-users-own")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "the-users-token")
    return "sk-ant-the-users-own"


def run_args(workflow: str, model_replies: str, **overrides: Any) -> argparse.Namespace:
    """What build_parser gives `tandem run WORKFLOW --model-replies X [...]`."""
    fields: dict[str, Any] = {
        "project": None,
        "workflows": None,
        "plugins": None,
        "state": None,
        "command": "run",
        "workflow": workflow,
        "payload": "null",
        "coordinator": None,
        "json": True,
        "follow": False,
        "dry_run": False,
        "model_replies": model_replies,
    }
    return argparse.Namespace(**{**fields, **overrides})


def run(
    project: Project, capsys: pytest.CaptureFixture[str], workflow: str, replies: str, **more: Any
) -> tuple[int, dict[str, Any], str]:
    """`tandem run --json` in this process: (exit code, the run record, stderr)."""
    code = cmd_run(project.config, run_args(workflow, replies, **more))
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def write(project: Project, name: str, text: str) -> Path:
    path = project.root / name
    path.write_text(textwrap.dedent(text))
    return path


def calls(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e["data"]["tool"], e["data"]["arguments"])
        for e in record["events"]
        if e["kind"] == "tool.call"
    ]


def refused(record: dict[str, Any]) -> list[str]:
    return [e["data"]["tool"] for e in record["events"] if e["kind"] == "tool.refused"]


# -- the file --------------------------------------------------------------------------------


def test_a_replies_file_drives_an_llm_run(
    counter: Project, capsys: pytest.CaptureFixture[str], real_key: str
) -> None:
    replies = write(counter, "replies.yaml", COUNT)
    code, record, err = run(counter, capsys, "counter", str(replies))
    assert code == 0, record
    assert f"model: scripted replies from {replies} (no API call)" in err  # stderr with --json
    assert "warning" not in err
    assert record["status"] == "succeeded" and record["coordinator"] == "llm"
    assert record["output"] == "Visits: 1."
    assert calls(record) == [("state.increment", {"key": "visits"})]
    results = [e["data"] for e in record["events"] if e["kind"] == "tool.result"]
    assert [r["tool"] for r in results] == ["state.increment"]
    assert record["usage"]["model_calls"] == 2
    # The environment is the user's again; their key never left this process.
    assert os.environ["ANTHROPIC_API_KEY"] == real_key
    assert os.environ["ANTHROPIC_AUTH_TOKEN"] == "the-users-token"
    assert "ANTHROPIC_BASE_URL" not in os.environ


def test_without_json_the_banner_comes_first_on_stdout(
    counter: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = write(counter, "replies.json", json.dumps(COUNT_JSON))
    code = cmd_run(counter.config, run_args("counter", str(replies), json=False))
    out, _ = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"model: scripted replies from {replies} (no API call)"
    assert "succeeded" in out and "Visits: 1." in out


COUNT_JSON = [
    {"text": "Counting.", "tool_use": [{"name": "state.increment", "input": {"key": "visits"}}]},
    {"text": "Visits: 1."},
]


MALFORMED = [
    ({"text": "x"}, "expected a list of turns, found a mapping"),
    ([], "no turns"),
    (["hello"], "turn 1: expected a mapping with text and/or tool_use, found the string 'hello'"),
    ([{"text": "a", "tools": []}], "turn 1: unknown key 'tools' (a turn has text and tool_use)"),
    ([{}], "turn 1: empty turn: give text, tool_use, or both"),
    ([{"text": ""}], "turn 1: empty turn"),
    ([{"text": 3}], "turn 1: text must be a string, found int 3"),
    ([{"tool_use": []}], "turn 1: tool_use must be a non-empty list of {name, input}"),
    ([{"tool_use": {"name": "state.get"}}], "turn 1: tool_use must be a non-empty list"),
    (
        [{"text": "ok"}, {"tool_use": [{"name": "state__get"}]}],
        "turn 2, tool call 1: 'state__get' is not a tool name of the form plugin.tool"
        " (Tandem's name, not the API's)",
    ),
    ([{"tool_use": [{"name": "get"}]}], "'get' is not a tool name of the form plugin.tool"),
    ([{"tool_use": [{"input": {}}]}], "turn 1, tool call 1: name is missing"),
    (
        [{"tool_use": [{"name": "state.get", "args": {}}]}],
        "turn 1, tool call 1: unknown key 'args' (a tool call has name and input)",
    ),
    (
        [{"tool_use": [{"name": "state.get", "input": ["key"]}]}],
        "turn 1, tool call 1: input must be a mapping of the tool's arguments, found a list",
    ),
]


@pytest.mark.parametrize(("data", "problem"), MALFORMED)
def test_each_problem_names_its_turn(data: Any, problem: str) -> None:
    _, problems = parse_turns(data)
    assert any(problem in p for p in problems), problems


def test_a_well_formed_file_parses_to_replies(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        textwrap.dedent("""
        - text: "Two at once."
          tool_use:
            - {name: state.get, input: {key: a}}
            - {name: state.set, input: {key: b, value: [1, 2]}}
        - tool_use:
            - {name: files.read, input: {path: x.md}}
        - text: Done.
        """)
    )
    first, second, last = read_replies(path)
    assert first.stop_reason == "tool_use"
    assert [b["type"] for b in first.content] == ["text", "tool_use", "tool_use"]
    assert [(b["name"], b["input"]) for b in first.content[1:]] == [
        ("state__get", {"key": "a"}),
        ("state__set", {"key": "b", "value": [1, 2]}),
    ]
    assert [b["name"] for b in second.content] == ["files__read"]
    assert (last.content, last.stop_reason) == (({"type": "text", "text": "Done."},), "end_turn")


def test_unreadable_and_unparsable_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--model-replies .*nope.yaml: cannot read"):
        read_replies(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- text: [unclosed\n")
    with pytest.raises(UsageError, match=r"bad.yaml: not valid YAML: .*\(line \d+\)"):
        read_replies(bad)
    dated = tmp_path / "dated.yaml"
    dated.write_text("- tool_use: [{name: state.set, input: {key: d, value: 2025-01-02}}]\n")
    with pytest.raises(UsageError, match="turn 1, tool call 1: input is not JSON"):
        read_replies(dated)


def test_a_malformed_file_exits_2_naming_each_turn(
    counter: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = write(
        counter,
        "replies.yaml",
        """
        - tool_use:
            - {name: state__increment, input: {key: visits}}
        - text: "Visits: 1."
          stop: true
        - {}
        """,
    )
    argv = ["--project", str(counter.root), "run", "counter", "--model-replies", str(replies)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing ran: no banner
    assert f"tandem: --model-replies {replies}: turn 1, tool call 1: 'state__increment'" in err
    assert f"--model-replies {replies}: turn 2: unknown key 'stop'" in err
    assert f"--model-replies {replies}: turn 3: empty turn" in err
    assert not counter.config.database.exists()  # no host was started


def test_serve_points_the_environment_at_the_stand_in_and_back(real_key: str) -> None:
    scripted = ScriptedModel("f.yaml", [Reply.text("hi")])
    with scripted.serve() as api:
        assert os.environ["ANTHROPIC_BASE_URL"] == api.base_url
        assert os.environ["ANTHROPIC_API_KEY"] == api.api_key != real_key
        assert "ANTHROPIC_AUTH_TOKEN" not in os.environ
    assert os.environ["ANTHROPIC_API_KEY"] == real_key
    assert os.environ["ANTHROPIC_AUTH_TOKEN"] == "the-users-token"
    assert "ANTHROPIC_BASE_URL" not in os.environ
    with pytest.raises(KeyboardInterrupt), scripted.serve():
        raise KeyboardInterrupt
    assert os.environ["ANTHROPIC_API_KEY"] == real_key


# -- what the stand-in reports ---------------------------------------------------------------


def test_replies_left_unused_are_a_warning(
    counter: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = write(counter, "replies.yaml", COUNT + '- text: "never asked for"\n')
    code, record, err = run(counter, capsys, "counter", str(replies))
    assert code == 0 and record["output"] == "Visits: 1."
    assert (
        "tandem: warning: model replies: 1 of the 3 scripted replies left unused"
        " (the run made 2 model requests)"
    ) in err


def test_replies_for_a_script_run_say_which_coordinator_ran(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    script = "def handler(trigger, tools, virtual_files, subagent):\n    return 'script'\n"
    project.workflow("both", prompt=PROMPT, script=script, tools=["state.*"])
    replies = write(project, "go.yaml", '- text: "unused"\n')
    code, record, err = run(project, capsys, "both", str(replies))
    assert code == 0 and record["coordinator"] == "script"
    assert "1 of the 1 scripted replies left unused (the run made 0 model requests);" in err
    assert "the run's coordinator was script: pass --coordinator llm" in err


def test_too_few_replies_fail_the_run_and_say_so(
    counter: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = write(counter, "replies.yaml", COUNT.split('- text: "Visits')[0])
    code, record, err = run(counter, capsys, "counter", str(replies))
    assert code == 1 and record["status"] == "failed"
    assert "no scripted reply left for request 2" in record["error"]
    assert (
        "tandem: warning: model replies: the Messages API stand-in refused a request:"
        " 400 invalid_request_error: tandem.testing stand-in: no scripted reply left for request 2"
    ) in err


def test_a_refused_request_makes_a_successful_run_exit_1() -> None:
    scripted = ScriptedModel("f.yaml", [Reply.text("hi")])
    with scripted.serve() as api:
        api.problems.append("400 invalid_request_error: messages: field required")
    record = RunRecord("r", "w", "v", "llm", None, "succeeded")
    assert scripted.finish(record, 0) == 1
    assert scripted.finish(record, 1) == 1
    clean = ScriptedModel("f.yaml", [])
    with clean.serve():
        pass
    assert clean.finish(record, 0) == 0


# -- run:RUN_ID --------------------------------------------------------------------------------


def test_a_recorded_run_replays_to_the_same_tool_plan(
    counter: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = write(
        counter,
        "replies.yaml",
        """
        - text: "Counting, and reading what was there."
          tool_use:
            - {name: state.increment, input: {key: visits}}
            - {name: state.get, input: {key: note, default: none}}
        - tool_use:
            - {name: state.set, input: {key: note, value: {seen: true}}}
            - {name: state.nothing, input: {}}
        - text: "Visits counted; note set."
        """,
    )
    code, recorded, _ = run(counter, capsys, "counter", str(replies))
    assert code == 0, recorded
    plan = [
        ("state.increment", {"key": "visits"}),
        ("state.get", {"key": "note", "default": "none"}),
        ("state.set", {"key": "note", "value": {"seen": True}}),
    ]
    assert calls(recorded) == plan
    assert refused(recorded) == ["state.nothing"]  # ToolHost refuses it, the model goes on

    code, replayed, err = run(counter, capsys, "counter", f"run:{recorded['id']}")
    assert code == 0, replayed
    assert f"model: scripted replies from run:{recorded['id']} (no API call)" in err
    assert "warning" not in err
    assert replayed["id"] != recorded["id"]
    assert calls(replayed) == plan
    assert refused(replayed) == ["state.nothing"]
    assert replayed["output"] == recorded["output"] == "Visits counted; note set."
    by_id = {r.id: r for r in _records(counter, recorded["id"], replayed["id"])}
    assert attempted_plan(by_id[replayed["id"]]) == attempted_plan(by_id[recorded["id"]])

    # The rebuilt turns are the file's, but for the tool_use ids.
    rebuilt = replies_from_run(by_id[recorded["id"]])
    assert [_shape(r) for r in rebuilt] == [_shape(r) for r in read_replies(replies)]


def _records(project: Project, *run_ids: str) -> list[RunRecord]:
    store = RunStore(project.config.database)
    try:
        return [r for r in map(store.get, run_ids) if r is not None]
    finally:
        store.close()


def _shape(reply: Reply) -> tuple[str, list[dict[str, Any]]]:
    return reply.stop_reason, [{k: v for k, v in b.items() if k != "id"} for b in reply.content]


def test_run_ids_that_cannot_be_replayed_are_usage_errors(
    counter: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    config = counter.config
    with pytest.raises(UsageError, match="no runs recorded yet"):
        ScriptedModel.load(config, "run:nope")
    replies = write(counter, "replies.yaml", COUNT)
    code, _, _ = run(counter, capsys, "counter", str(replies))
    assert code == 0
    with pytest.raises(UsageError, match=r"run:nope: no run 'nope' in "):
        ScriptedModel.load(config, "run:nope")
    with pytest.raises(UsageError, match="give a run id after run:"):
        ScriptedModel.load(config, "run:")
    scripted = RunRecord("s1", "w", "v", "script", None, "succeeded")
    with pytest.raises(UsageError, match=r"made no model calls to replay \(coordinator script\)"):
        replies_from_run(scripted)


# -- beside a daemon -----------------------------------------------------------------------


def test_an_embedded_host_runs_beside_a_daemon_on_the_same_state(
    project: Project, capsys: pytest.CaptureFixture[str], start_daemon: Any
) -> None:
    project.workflow(
        "relay",
        prompt="Say go.",
        script=WAITS_FOR_GO,
        tools=["state.*"],
        limits={"max_tool_calls": 1000, "timeout_s": 60},
    )
    daemon = start_daemon(project)
    waiting = daemon.client.trigger("relay", None, None)
    assert eventually(lambda: daemon.client.run(waiting).status == "running")
    replies = write(
        project,
        "go.yaml",
        """
        - tool_use: [{name: state.set, input: {key: go, value: true}}]
        - text: "Said go."
        """,
    )
    # The daemon serves the project, and still the run is on a host of this process.
    code, record, _ = run(project, capsys, "relay", str(replies), coordinator="llm")
    assert code == 0, record
    assert record["output"] == "Said go."
    for _ in daemon.client.watch(waiting):
        pass
    # Its run was left alone by the embedded host's start (not marked interrupted), and
    # saw what the model's run wrote through the other host's state plugin.
    finished = daemon.client.run(waiting)
    assert (finished.status, finished.output) == ("succeeded", "saw go")
    # One store: the daemon sees the embedded host's run, and is still serving.
    assert daemon.client.run(record["id"]).output == "Said go."
    assert daemon.process.poll() is None
    assert daemon.run("relay").status == "succeeded"


# -- the pr_merged example ---------------------------------------------------------------------


def test_the_pr_merged_file_is_the_recorded_webhook_conversation() -> None:
    folder = REPO / "workflows" / "pr_merged"
    settings = json.loads((folder / "files" / "settings.json").read_text())
    from_file = read_replies(folder / "model-replies.yaml")
    expected = webhook_conversation(101, settings)
    assert [_shape(r) for r in from_file] == [_shape(r) for r in expected]


def test_the_documented_pr_merged_example_on_the_stand_ins(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/llm.md's example: the Slack and GitHub stand-ins serve the plugins."""
    shutil.copytree(REPO / "workflows" / "pr_merged", project.root / "workflows" / "pr_merged")
    trigger = project.root / "trigger.json"
    trigger.write_text(
        json.dumps({"trigger": "webhook", "payload": pull_request_event(101, action="closed")})
    )
    with SlackStandIn() as slack, GitHubStandIn() as github:
        for name, value in {**slack.env, **github.env}.items():
            monkeypatch.setenv(name, value)
        code, record, err = run(
            project,
            capsys,
            "pr_merged",
            str(project.root / "workflows" / "pr_merged" / "model-replies.yaml"),
            coordinator="llm",
            payload=f"@{trigger}",
        )
        added = {(r.ts, r.name) for r in slack.reactions_added}
    assert code == 0, (record, err)
    assert "warning" not in err
    assert record["output"].startswith("Added 2 reaction(s): :merged:")
    assert added == {("1764460920.000300", "merged"), ("1764461160.000700", "merged")}
    assert [tool for tool, _ in calls(record)] == [
        "files.read",
        "slack.get_messages",
        "github.pr_status",
        "slack.add_reaction",
        "slack.add_reaction",
    ]


# -- approvals, answered from another shell ----------------------------------------------------

APPROVE_EVERY_CHANGE = {"llm": ["side_effects"], "timeout_s": 60}
WAITS = re.compile(r"WAITS for approval: tandem approve (\S+) (\d+)")


class Following(Closing):
    """`tandem run WORKFLOW --model-replies FILE --follow` in a subprocess, as in one shell;
    its stdout lines kept as they come."""

    def __init__(self, project: Project, workflow: str, replies: Path) -> None:
        argv = ["--project", str(project.root), "run", workflow, "--follow"]
        self.process = subprocess.Popen(
            [*TANDEM, *argv, "--model-replies", str(replies)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self._reader.start()

    def waiting(self) -> tuple[str, str]:
        """The run id and call of the `tandem approve RUN CALL` the run prints."""

        def found() -> list[re.Match[str]]:
            return [m for line in list(self.lines) if (m := WAITS.search(line))]

        assert eventually(lambda: bool(found())), self.lines
        first = found()[0]
        return first[1], first[2]

    def end(self) -> tuple[int, str]:
        """The exit code, and everything printed on stdout."""
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code, "".join(self.lines)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def approving(counter: Project) -> tuple[Project, Path]:
    """counter, its increment held for a person's approval, and its replies."""
    counter.workflow("counter", prompt=PROMPT, tools=["state.*"], approvals=APPROVE_EVERY_CHANGE)
    return counter, write(counter, "replies.yaml", COUNT)


def test_a_scripted_run_is_approved_from_another_shell_without_a_daemon(
    approving: tuple[Project, Path],
) -> None:
    project, replies = approving
    with Following(project, "counter", replies) as run:
        run_id, call = run.waiting()
        listed = tandem(project, "runs", "--status", "waiting", "--json")
        assert run_id in listed.stdout, listed.stderr
        approved = tandem(project, "approve", run_id, call)
        assert approved.returncode == 0, approved.stderr
        assert f"run {run_id}: approved call(s) {call}" in approved.stdout
        code, out = run.end()
    assert code == 0, out
    assert "approved" in out and "Visits: 1." in out


def test_a_scripted_run_beside_a_daemon_is_denied_from_another_shell(
    approving: tuple[Project, Path], start_daemon: Any
) -> None:
    project, replies = approving
    start_daemon(project)
    with Following(project, "counter", replies) as run:
        run_id, call = run.waiting()
        denied = tandem(project, "deny", run_id, call, "not during the freeze")
        assert denied.returncode == 0, denied.stderr
        code, out = run.end()
    assert code == 0, out  # the model is told, and ends its turn
    assert "DENIED (not during the freeze)" in out


def test_a_waiting_scripted_run_is_cancelled_from_another_shell(
    approving: tuple[Project, Path],
) -> None:
    project, replies = approving
    with Following(project, "counter", replies) as run:
        run_id, _ = run.waiting()
        cancelled = tandem(project, "runs", "cancel", run_id)
        assert cancelled.returncode == 0, cancelled.stderr
        code, out = run.end()
    assert code == 1
    assert "cancelled" in out


# -- shadows of a scripted run -----------------------------------------------------------------

COUNTS_AS_A_SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return f"Visits: {tools.state.increment(key='visits')}."
"""


def shadow_report(project: Project, workflow: str) -> dict[str, Any]:
    report = tandem(project, "shadow", workflow, "--json")
    assert report.returncode == 0, report.stderr
    result: dict[str, Any] = json.loads(report.stdout)
    return result


def test_a_script_shadow_of_a_scripted_run_runs_to_its_end(project: Project) -> None:
    project.workflow(
        "counter",
        prompt=PROMPT,
        script=COUNTS_AS_A_SCRIPT,
        tools=["state.*"],
        coordinator="llm",
        shadow="script",
    )
    replies = write(project, "replies.yaml", COUNT)
    ran = tandem(project, "run", "counter", "--model-replies", str(replies))
    assert ran.returncode == 0, ran.stderr
    assert "warning" not in ran.stderr
    report = shadow_report(project, "counter")
    assert (report["agreed"], report["shadow_failed"], report["pending"]) == (1, 0, 0), report
    [shadow] = report["shadows"]
    assert (shadow["coordinator"], shadow["status"]) == ("script", "succeeded")


def test_an_llm_shadow_of_a_scripted_run_is_skipped_and_takes_no_turn(project: Project) -> None:
    project.workflow(
        "counter", prompt=PROMPT, script=COUNTS_AS_A_SCRIPT, tools=["state.*"], shadow="llm"
    )
    replies = write(project, "replies.yaml", COUNT)
    # The run is the model's (as the shadow would be); its two turns are all there are.
    argv = ["run", "counter", "--coordinator", "llm", "--model-replies", str(replies)]
    ran = tandem(project, *argv)
    assert ran.returncode == 0, ran.stderr
    assert "warning" not in ran.stderr  # no request was refused, no turn taken
    report = shadow_report(project, "counter")
    assert (report["skipped"], report["shadow_failed"]) == (1, 0), report
    why = (
        f"skipped: the model's replies ({replies}) are scripted for the run itself;"
        " an llm shadow has no model of its own offline"
    )
    assert report["shadows"][0]["error"] == why
    text = tandem(project, "shadow", "counter").stdout
    assert "shadow failed 0, skipped 1" in text and f"  {why}" in text


def test_an_llm_shadow_without_a_key_is_skipped_saying_so(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN")
    project.workflow(
        "counter", prompt=PROMPT, script=COUNTS_AS_A_SCRIPT, tools=["state.*"], shadow="llm"
    )
    ran = tandem(project, "run", "counter")
    assert ran.returncode == 0, ran.stderr
    report = shadow_report(project, "counter")
    assert report["skipped"] == 1, report
    assert report["shadows"][0]["error"] == "skipped: no model: ANTHROPIC_API_KEY is not set"
