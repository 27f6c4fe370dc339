"""Guards (guards.py): asked by the host before each call, in a guard process of the run's
own, refusing with a reason or by failing; a script's refused call raises GuardRefused.
One daemon serves every test here."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ADD_PLUGIN, REPO, Daemon, Project, eventually
from tandem.guards.process import guard_limits
from tandem.isolation.process import runner_rlimits
from tandem.replay.recording import Recording
from tandem.workflows.loader import WorkflowError, load_workflow
from tandem.workflows.spec import Limits
from tandem_sdk.guards import load_guards

PLUGIN = (
    ADD_PLUGIN
    + '''
@tool
def note(text: str) -> str:
    """Write a note somewhere (a side effect).

    Args:
        text: what to write.
    """
    return f"noted {text}"
'''
)

GUARDS = """
def good_add(call, history):
    a = call["arguments"]["a"]
    if a == 2:
        return "two is not allowed"
    if a == 3:
        return 1 / 0
    if a == 4:
        while True:
            pass
    if a == 5:
        return 42
    if a == 7:
        import os
        os._exit(3)
    if a == 6:
        return "seen " + ",".join(str(h["arguments"]["a"]) + ("!" if h["refused"] else "")
                                  for h in history)
    return None


def good_note(call, history):
    text = call["arguments"]["text"]
    if text == "forbidden":
        return "not that note"
    if text == "sizes":
        return "seen " + ",".join(str(h.get("result_over_cap", "whole")) for h in history)
    if any(h["arguments"] == {"text": text} and "result" in h for h in history):
        return "noted already"
    return None
"""

ADDS = """
from tandem_sdk.errors import GuardRefused

def handler(trigger, tools, virtual_files, subagent):
    answers = []
    for a in trigger["adds"]:
        try:
            answers.append(tools.good.add(a=a, b=1))
        except GuardRefused as refused:
            answers.append(refused.reason)
    return answers
"""

NOTES = """
from tandem_sdk.errors import GuardRefused

def handler(trigger, tools, virtual_files, subagent):
    first = tools.good.note(text="fine")
    try:
        tools.good.note(text="forbidden")
    except GuardRefused as refused:
        return [first, refused.type, refused.reason]
    return [first, "not refused"]
"""

TWICE = """
import threading
from tandem_sdk.errors import GuardRefused

def handler(trigger, tools, virtual_files, subagent):
    answers = []
    def note():
        try:
            answers.append(tools.good.note(text="once"))
        except GuardRefused as refused:
            answers.append(refused.reason)
    both = [threading.Thread(target=note) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    return sorted(answers)
"""

BIG = """
from tandem_sdk.errors import GuardRefused

def handler(trigger, tools, virtual_files, subagent):
    tools.good.note(text="x" * 400)  # past the recording's cap, whole for the guards
    try:
        tools.good.note(text="sizes")
    except GuardRefused as refused:
        return refused.reason
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    project = Project(tmp_path_factory.mktemp("guards") / "project")
    (project.root / "tandem.yaml").write_text("record:\n  max_result_bytes: 300\n")
    project.plugin("good", PLUGIN)
    for name, script in (("adds", ADDS), ("notes", NOTES), ("big", BIG)):
        folder = project.workflow(name, tools=["good.*"], script=script, guards={"timeout_s": 1})
        (folder / "guards.py").write_text(GUARDS)
    approvals = {"script": ["side_effects"], "timeout_s": 60}
    folder = project.workflow("twice", tools=["good.*"], script=TWICE, approvals=approvals)
    (folder / "guards.py").write_text(GUARDS)
    daemon = Daemon(project)
    yield daemon
    daemon.close()


def test_a_guard_that_refuses_raises_loops_or_answers_a_number_refuses_and_the_run_goes_on(
    daemon: Daemon,
) -> None:
    record = daemon.run("adds", {"adds": [1, 2, 3, 5, 4, 1, 7, 6]})
    assert record.status == "succeeded", record.error
    two = "guard good_add refused this call: two is not allowed"
    three, five, four, seven = (f"guard good_add failed: {why}" for why in (
        "ZeroDivisionError: division by zero",
        "returned int, not a reason (str) or None",
        "no answer within 1s (guards.timeout_s)",
        "the guard process exited",
    ))  # fmt: skip
    # After the loop and the exit the guard process is a new one: it sees the whole history.
    six = "guard good_add refused this call: seen 1,2!,3!,5!,4!,1,7!"
    assert record.output == [2, two, three, five, four, 2, seven, six]
    refused = [e.data for e in record.events if e.kind == "guard.refused"]
    assert [(r["guard"], r["tool"]) for r in refused] == [("good_add", "good.add")] * 6
    started = [e.data for e in record.events if e.kind == "guards.started"]
    assert len(started) == 3, started
    results = [e.data for e in record.events if e.kind == "tool.result"]
    refusing = [None, *["good_add"] * 4, None, "good_add", "good_add"]
    assert [r.get("refused") for r in results] == refusing
    assert all(r["executed"] is False for r in results if r.get("refused"))
    ledger = daemon.client.ledger("adds", 0.0, 0.0, 100)
    assert ledger["refusals"] == {"adds": {"good_add": 6}}


def test_guards_apply_in_a_dry_run_and_a_replay(daemon: Daemon) -> None:
    expected = ["noted fine", "guard_refused", "guard good_note refused this call: not that note"]
    live = daemon.run("notes")
    assert (live.status, live.output) == ("succeeded", expected), live.error
    dry = daemon.run("notes", dry_run=True)
    planned = {"dry_run": True, "tool": "good.note", "arguments": {"text": "fine"}}
    assert dry.output == [planned, *expected[1:]]  # the first note planned, the second refused
    replay_id = daemon.client.replay(live.id)
    for _ in daemon.client.watch(replay_id):
        pass
    replay = daemon.client.run(replay_id)
    assert (replay.status, replay.output) == ("succeeded", expected), replay.error
    # The refused call is a wrong one, as a flagged call is: this replay made it again.
    diff = Recording.from_run(live).diff(replay)
    assert [e.kind for e in diff.entries] == ["same", "repeated"]
    for run in (dry, replay):
        (refused,) = [e.data for e in run.events if e.kind == "guard.refused"]
        assert (refused["guard"], refused["reason"]) == ("good_note", "not that note")
    assert daemon.client.ledger("notes", 0.0, 0.0, 100)["refusals"] == {"notes": {"good_note": 1}}


def test_parallel_calls_held_for_approval_are_asked_again_one_after_the_other(
    daemon: Daemon,
) -> None:
    run_id = daemon.client.trigger("twice", None, None)

    def held() -> int:
        events = daemon.client.run(run_id).events
        return sum(e.kind == "approval.waiting" for e in events)

    # Both pass their guard before a person decides; approved, each is asked again in
    # turn, and the second sees the first's answer.
    assert eventually(lambda: held() == 2), daemon.log
    assert len(daemon.client.decide(run_id, 0, True)) == 2
    for _ in daemon.client.watch(run_id):
        pass
    record = daemon.client.run(run_id)
    refused = "guard good_note refused this call: noted already"
    assert (record.status, record.output) == ("succeeded", [refused, "noted once"]), record.error
    results = [e.data for e in record.events if e.kind == "tool.result"]
    assert sorted(str(r.get("refused")) for r in results) == ["None", "good_note"]


def test_the_guard_process_runs_in_a_cgroup_of_its_own(daemon: Daemon) -> None:
    # Where the host makes its runs' cgroups, when it has them (the daemon says at start).
    below = [line.rsplit(" below ", 1)[1] for line in daemon.log if " per run, below " in line]
    run_id = daemon.client.trigger("adds", {"adds": [4]}, None)  # its guard loops a second

    def groups() -> list[Path]:
        return [g for b in below for g in Path(b).glob(f"*/{run_id}.guards")]

    held = bool(below) and eventually(lambda: bool(groups()))  # memory bounded, children killed
    for _ in daemon.client.watch(run_id):
        pass
    assert held == bool(below), daemon.log
    assert groups() == [], "removed with the process"


def test_a_guard_sees_results_whole_that_the_recording_cuts(daemon: Daemon) -> None:
    record = daemon.run("big")
    # "noted xxx…" is 408 bytes of JSON, past the project's record.max_result_bytes (300):
    # the trace keeps its size, the guard its whole text (its bound is 1 MiB).
    seen = "guard good_note refused this call: seen whole"
    assert (record.status, record.output) == ("succeeded", seen), record.error
    kept = next(e.data for e in record.events if e.kind == "tool.result")
    assert kept.get("result_over_cap") == 408


def test_a_guard_process_cpu_bound_covers_every_question_of_a_run() -> None:
    # RLIMIT_CPU counts the process's whole life: it must not be the run's timeout_s, or
    # the CPU of earlier questions would refuse a later one; each has its own deadline.
    limits = guard_limits(Limits(timeout_s=5, max_tool_calls=100), guard_timeout_s=2.0)
    assert json.loads(runner_rlimits(limits))["RLIMIT_CPU"] == 2 * 100 * 2 + 1
    assert limits.memory_mb == Limits().memory_mb


def test_guards_py_must_parse_and_guard_only_tools_in_scope(tmp_path: Path) -> None:
    project = Project(tmp_path)
    folder = project.workflow("w", tools=["good.add"], script=ADDS)
    (folder / "guards.py").write_text(GUARDS + "\ndef _helper(x):\n    return x\n")
    with pytest.raises(WorkflowError) as refused:
        load_workflow(folder, ["good.add", "good.note"])
    assert "good_note: guards no tool in the workflow's scope" in str(refused.value)
    hidden = "try:\n    def good_add(call, history):\n        return 'no'\nexcept ImportError:\n"
    for source in ("good_add = print\n", hidden + "    pass\n"):
        (folder / "guards.py").write_text(source)
        with pytest.raises(WorkflowError, match=r"good_add would guard good\.add only as a plain"):
            load_workflow(folder, ["good.add"])
    (folder / "guards.py").write_text("def good_add(call, history)\n")
    with pytest.raises(WorkflowError, match="syntax error"):
        load_workflow(folder, ["good.add"])
    project.workflow("w", tools=["good.*"], script=ADDS)
    (folder / "guards.py").write_text(GUARDS)
    loaded = load_workflow(folder, ["good.add", "good.note"])
    assert loaded.guard_names == {"good_add", "good_note"}  # _helper is no guard
    assert (loaded.guard_for("good.add"), loaded.guard_for("good.other")) == ("good_add", None)


def test_pr_merged_guards_the_reaction_its_settings_name_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pr_merged"
    shutil.copytree(REPO / "workflows" / "pr_merged", folder)
    settings = json.loads((folder / "files" / "settings.json").read_text())
    settings["reactions"]["merged"] = "shipit"
    (folder / "files" / "settings.json").write_text(json.dumps(settings))
    monkeypatch.setenv("TANDEM_WORKFLOW_DIR", str(folder))  # as the guard process has it
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_guards puts the folder on it
    guards = load_guards(str(folder / "guards.py"), "guards.py", str(folder))
    guard = guards["slack_add_reaction"]
    unread = {"channel": "eng", "ts": "1.2"}
    refusal = guard({"tool": "slack.add_reaction", "arguments": {**unread, "name": "shipit"}}, [])
    assert refusal == "message 1.2 was not read in this run: read it with slack.get_messages first"
    assert (
        guard({"tool": "slack.add_reaction", "arguments": {**unread, "name": "merged"}}, []) is None
    )
