"""Escalation: a script hands its run to the model, which goes on with the same run
(same id, tools, limits and trace), live, in a dry run and in a replay."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, Project, eventually
from llm_fixtures import LlmHost, llm_host
from tandem.escalation import ESCALATED
from tandem.rewrite.material import Material, SampleRun, choose_for_validation, choose_sample
from tandem.rewrite.render import brief_markdown
from tandem.rewrite.validate import judge
from tandem.store import Event, RunRecord
from tandem.testing import AnthropicStandIn, Reply

# The `api` and `daemon` fixtures, built on this module's `llm`.
pytest_plugins = ["llm_fixtures"]

PROMPT = "You greet people with the util tools."
# Makes a call, then hands over: through subagent.take_over, or by raising Escalate.
TAKING_OVER = """
def handler(trigger, tools, virtual_files, subagent):
    total = tools.util.add(a=1, b=2)
    subagent.take_over("no rule for " + trigger["who"], context={"total": total})
"""
RAISING = """
from tandem_sdk import Escalate

def handler(trigger, tools, virtual_files, subagent):
    tools.util.add(a=2, b=2)
    if trigger:
        tools.util.echo(text=trigger["text"])
    raise Escalate("unsure", context=["a", 1])
"""

# Asked before the model's calls as before the script's; it sees the script's calls too.
ECHO_GUARD = """
def util_echo(call, history):
    return "not after " + ",".join(h["tool"] for h in history)
"""


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmHost]:
    def define(project: Any) -> None:
        # A script with the prompt the model goes on with (no prompt: it cannot escalate).
        project.workflow("greet", script=TAKING_OVER, prompt=PROMPT, tools=["util.*"])
        project.workflow("planner", script=RAISING, prompt=PROMPT, tools=["util.*"])
        project.workflow("promptless", script=RAISING, tools=["util.*"])
        held = TAKING_OVER.replace("tools.util.add(a=1, b=2)", "tools.util.whoami()")
        approvals = {"llm": ["util.whoami"]}
        project.workflow("held", script=held, prompt=PROMPT, tools=["util.*"], approvals=approvals)
        project.workflow(
            "shadowed",
            script=RAISING,
            prompt=PROMPT,
            tools=["util.*"],
            coordinator="llm",
            shadow="script",
        )
        guarded = project.workflow("guarded", script=TAKING_OVER, prompt=PROMPT, tools=["util.*"])
        (guarded / "guards.py").write_text(ECHO_GUARD)

    with llm_host(tmp_path_factory.mktemp("esc") / "project", define) as host:
        yield host


def events(record: Any, kind: str) -> list[Any]:
    return [e for e in record.events if e.kind == kind]


def test_the_model_takes_over_the_same_run(
    llm: LlmHost, daemon: Any, api: AnthropicStandIn, cli: Cli
) -> None:
    api.add(Reply.tool_use(("util__echo", {"text": "hi Ada"})), Reply.text("Greeted Ada."))
    record = daemon.run("greet", {"who": "Ada"})

    assert record.status == "succeeded", record.error
    assert record.output == "Greeted Ada."
    assert record.coordinator == "script+llm"
    # The first request: the prompt and trigger (system), then the script's call with its
    # result, the reason and the context.
    first = api.requests[0].body
    assert PROMPT in first["system"][0]["text"] and '"Ada"' in first["system"][1]["text"]
    handed = first["messages"][0]["content"][0]["text"]
    assert "Its reason: no rule for Ada" in handed
    assert 'What it passed on (JSON):\n{"total": 3}\n' in handed
    call = {"tool": "util.add", "arguments": {"a": 1, "b": 2}, "result": 3}
    assert f"succeeded.\n{json.dumps([call])}\n" in handed
    # The trace: the script's call, the hand-over, then the model's turn and call.
    kinds = [e.kind for e in record.events]
    handover = kinds.index("run.escalated")
    assert kinds.index("tool.result") < handover < kinds.index("model.request")
    assert events(record, "run.escalated")[0].data == {
        "reason": "no rule for Ada",
        "context": {"total": 3},
        "calls": 1,
    }
    tools = [e.data["tool"] for e in events(record, "tool.call")]
    assert tools == ["util.add", "util.echo"]
    # The ledger counts it per workflow and reason; the run's cost stays its script's.
    report = daemon.client.ledger("greet", 0.0, time.time() + 60, 100)
    assert [(e["reason"], e["runs"]) for e in report["escalations"]] == [("no rule for Ada", 1)]
    assert [g["coordinator"] for g in report["groups"]] == ["script"]
    assert report["groups"][0]["model_calls"] == 2
    shown = cli(llm.project, "stats", "greet").stdout
    assert f"  greet      1  no rule for Ada  (last: {record.id})" in shown
    # Found by the name as typed (ASCII).
    assert record.id in cli(llm.project, "runs", "--coordinator", "script+llm").stdout
    trace = cli(llm.project, "runs", "show", record.id).stdout
    assert (
        "run.escalated  the script handed the run to the model after 1 call(s): no rule for"
        ' Ada  context {"total":3}'
    ) in trace
    # Its fixture says so: the calls are the script's and then the model's.
    fixture = daemon.client.export(record.id)
    assert fixture["escalated"] == {"reason": "no rule for Ada", "context": {"total": 3}}
    assert [c["tool"] for c in fixture["calls"]] == ["util.add", "util.echo"]


def test_a_dry_run_escalates_into_a_dry_run_told_within_a_budget(
    daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(Reply.tool_use(("util__whoami", {})), Reply.text("planned"))
    record = daemon.run("planner", {"text": "x" * 100_000}, dry_run=True)

    assert record.status == "succeeded", record.error
    assert record.mode == "dry_run" and record.coordinator == "script+llm"
    handed = api.requests[0].body["messages"][0]["content"][0]["text"]
    assert "Its reason: unsure" in handed and '["a", 1]' in handed
    # The script's calls are shown cut to a budget: a large result does not fill the request.
    assert "… [100000 characters]" in handed and len(handed) < 10_000
    # The model's call with side effects is planned, not made, as any dry run's.
    whoami = [e.data for e in events(record, "tool.call") if e.data["tool"] == "util.whoami"]
    assert [(c["executed"], c["source"]) for c in whoami] == [(False, "planned")]


def test_a_replay_answers_the_models_calls_from_the_recording(
    daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(Reply.tool_use(("util__whoami", {})), Reply.text("done"))
    recorded = daemon.run("planner")
    assert recorded.status == "succeeded", recorded.error
    live_whoami = [e.data for e in events(recorded, "tool.call")][-1]
    assert (live_whoami["tool"], live_whoami["source"]) == ("util.whoami", "plugin")

    api.add(Reply.tool_use(("util__whoami", {})), Reply.text("done again"))
    replay_id = daemon.client.replay(recorded.id)
    for _ in daemon.client.watch(replay_id):
        pass
    replayed = daemon.client.run(replay_id)

    assert replayed.status == "succeeded", replayed.error
    assert replayed.mode == "replay" and replayed.coordinator == "script+llm"
    sources = [(e.data["tool"], e.data["source"]) for e in events(replayed, "tool.call")]
    assert sources == [("util.add", "recording"), ("util.whoami", "recording")]
    # The recorded run's result, not a new one (a whoami run now would name the replay).
    result = [e.data for e in events(replayed, "tool.result")][-1]
    assert result["result"]["run"] == recorded.id


def test_a_shadow_or_a_candidates_replay_records_the_escalation_and_asks_no_model(
    llm: LlmHost, daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(Reply.text("hello"))  # the live llm run's one turn; its script shadow escalates
    live = daemon.run("shadowed")
    assert live.status == "succeeded", live.error
    assert eventually(lambda: bool(daemon.client.runs("shadowed", mode="shadow"))), daemon.log
    (shadow,) = daemon.client.runs("shadowed", mode="shadow")
    assert eventually(lambda: daemon.client.run(shadow.id).status not in ("queued", "running"))
    shadow = daemon.client.run(shadow.id)
    assert shadow.status == "failed" and shadow.coordinator == "script"
    assert shadow.error == "the script escalated (unsure); a shadow does not hand over to the model"
    assert [e.data["reason"] for e in events(shadow, "run.escalated")] == ["unsure"]

    api.add(Reply.text("done"))
    recorded = daemon.run("planner")  # escalated live: the model finished it
    folder = llm.project.root / "workflows" / "planner"
    replay_id = daemon.client.replay(recorded.id, workflow_path=str(folder))
    for _ in daemon.client.watch(replay_id):
        pass
    replayed = daemon.client.run(replay_id)
    assert replayed.status == "failed", replayed.error
    assert "a candidate's replay does not hand over to the model" in str(replayed.error)
    assert len(api.requests) == 2, "neither the shadow nor the candidate asked the model"


def test_no_prompt_fails_the_run_saying_so(daemon: Any, api: AnthropicStandIn) -> None:
    record = daemon.run("promptless")

    assert record.status == "failed"
    assert record.error == (
        "the script escalated (unsure), but workflow 'promptless' has no prompt for the model"
        " to go on with: add `prompt:` to its workflow.yaml"
    )
    assert record.coordinator == "script" and api.requests == []
    assert [e.data["reason"] for e in events(record, "run.escalated")] == ["unsure"]


def _run(run_id: str, created: float, coordinator: str = "script", **fields: Any) -> RunRecord:
    return RunRecord(
        id=run_id,
        workflow="greet",
        workflow_version="v1",
        coordinator=coordinator,
        trigger={"who": run_id},
        status="succeeded",
        created_at=created,
        **fields,
    )


def test_rewrite_offers_the_escalated_runs_first_and_never_accepts_an_escalation() -> None:
    flag = {"reason": "wrong person", "calls": []}
    newest_first = [
        _run("plain-3", 3),
        _run("esc-2", 2, ESCALATED),
        _run("flag-1", 1, flag=flag),
        _run("esc-0", 0, ESCALATED),
    ]
    assert [r.id for r in choose_sample(newest_first, 3)] == ["esc-2", "esc-0", "flag-1"]
    assert [r.id for r in choose_for_validation(newest_first, 1)] == [
        "plain-3",
        "esc-2",
        "flag-1",
        "esc-0",
    ]
    sample = SampleRun.from_fixture(
        {
            "run": "esc-2",
            "coordinator": ESCALATED,
            "status": "succeeded",
            "trigger": {"who": "esc-2"},
            "calls": [{"tool": "util.add", "arguments": {"a": 1, "b": 2}, "result": 3}],
            "output": "Greeted.",
            "escalated": {"reason": "no rule for Ada", "context": {"total": 3}},
        }
    )
    material = Material(
        workflow="greet",
        folder=Path("greet"),
        yaml_text="name: greet\n",
        prompt_file="prompt.md",
        prompt=PROMPT,
        model="claude-test",
        tools=[],
        files={},
        samples=[sample],
        recorded=newest_first,
    )
    brief = brief_markdown(material)
    assert "- `esc-2` (script+llm, succeeded, ESCALATED by the script)" in brief
    assert brief.index("- `esc-0`") < brief.index("- `plain-3`")
    assert "### Run `esc-2`: script+llm, succeeded, ESCALATED" in brief
    assert "saying 'no rule for Ada', with the context {\"total\": 3}" in brief
    # A candidate that escalates in its replay does not agree, whatever the model did.
    recorded = _run("esc-2", 2, ESCALATED)
    handed = Event(1, 0.0, "run.escalated", {"reason": "unsure", "context": None, "calls": 0})
    replayed = _run("replay-1", 4, ESCALATED, mode="replay", events=[handed])
    verdict = judge(recorded, replayed)
    assert not verdict.agree
    assert verdict.error == "the script escalated (unsure): it must handle this run itself"


def test_without_a_model_the_escalated_run_fails_saying_why(
    project: Project, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    project.workflow("lonely", script=RAISING.replace("tools.util.add(a=2, b=2)", "pass"))
    (project.root / "workflows" / "lonely" / "prompt.md").write_text(PROMPT)
    spec = project.root / "workflows" / "lonely" / "workflow.yaml"
    spec.write_text(spec.read_text() + "prompt: prompt.md\n")

    result = cli(project, "run", "lonely", "--json")  # an embedded host: no daemon runs

    assert result.returncode != 0
    run = json.loads(result.stdout)
    assert run["status"] == "failed" and run["coordinator"] == "script"
    assert run["error"].startswith(
        "the script escalated (unsure), but no model is configured: coordinator llm needs an"
        " Anthropic API key: set ANTHROPIC_API_KEY"
    )


def test_check_warns_of_a_script_that_can_escalate_without_a_prompt(
    project: Project, cli: Cli
) -> None:
    quiet = "def handler(trigger, tools, virtual_files, subagent):\n    return 1\n"
    project.workflow("quiet", script=quiet)
    project.workflow("lonely", script=RAISING.replace("tools.util.add(a=2, b=2)", "pass"))
    project.workflow("handing", script=TAKING_OVER.replace("tools.util.add(a=1, b=2)", "1"))

    result = cli(project, "check")

    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "can escalate" in line]
    assert [line.split("'")[0] for line in warned] == [
        "warning: workflow handing",
        "warning: workflow lonely",
    ]
    assert warned[0].endswith("an escalated run fails; add `prompt:` to its workflow.yaml")


def test_the_models_calls_are_held_as_an_llm_runs_are(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.tool_use(("util__whoami", {})), Reply.text("stopped"))
    run_id = daemon.client.trigger("held", {"who": "Ada"}, None)
    assert eventually(lambda: daemon.client.run(run_id).status == "waiting")
    assert daemon.client.decide(run_id, 0, False, "not now") == [2]
    for _ in daemon.client.watch(run_id):
        pass
    record = daemon.client.run(run_id)

    assert record.status == "succeeded", record.error
    # approvals: {llm: [util.whoami]}: the script's own whoami ran; the model's was held.
    calls = [(e.data["tool"], e.data["executed"]) for e in events(record, "tool.call")]
    assert calls == [("util.whoami", True), ("util.whoami", True)]
    assert [e.data["call"] for e in events(record, "approval.waiting")] == [2]
    denied = api.requests[1].tool_results()[0]
    assert denied["is_error"] is True and "not now" in denied["content"]


def test_a_guard_refuses_the_models_call_after_the_hand_over(
    daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(Reply.tool_use(("util__echo", {"text": "hi Ada"})), Reply.text("Left it."))
    record = daemon.run("guarded", {"who": "Ada"})

    assert (record.status, record.coordinator) == ("succeeded", ESCALATED), record.error
    # The model's echo was refused, never made, and the model was told why.
    (refused,) = events(record, "guard.refused")
    assert (refused.data["guard"], refused.data["tool"]) == ("util_echo", "util.echo")
    results = [e.data for e in events(record, "tool.result")]
    assert [(r.get("refused"), r["executed"]) for r in results] == [
        (None, True),
        ("util_echo", False),
    ]
    told = json.dumps(api.requests[1].body["messages"][-1])
    assert "guard util_echo refused this call: not after util.add" in told
