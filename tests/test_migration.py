"""The migration path, part 1, on pr_merged: dry runs that can cause no side effect,
recordings, replay with its tool-plan diff, and real runs exported as fixtures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from pr_merged_fixtures import SETTINGS, SWEEP, WEBHOOK_101, Setup, webhook_trigger
from tandem.testing.pr_merged import webhook_conversation
from tandem_sdk._pb import control_pb2

ENG = "C0ENG00001"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    # A small recording cap, so one test can see a result that was too large to keep.
    setup = Setup(tmp_path_factory.mktemp("migration") / "project")
    yield setup
    setup.close()


@pytest.fixture
def fresh(setup: Setup) -> Setup:
    setup.slack.reset()
    setup.model.reset()
    return setup


def _calls(record, kind: str = "tool.call") -> list[dict]:
    return [e.data for e in record.events if e.kind == kind]


def test_tools_say_what_they_do_to_people_and_to_the_model(fresh: Setup, cli: Cli) -> None:
    listed = json.loads(cli(fresh.project, "tools", "pr_merged", "--json").stdout)
    annotations = {t["name"]: t["annotations"] for t in listed}
    assert annotations["slack.get_messages"] == {
        "read_only": True,
        "destructive": False,
        "idempotent": True,
        "open_world": True,
    }
    assert annotations["slack.add_reaction"] == {
        "read_only": False,
        "destructive": False,
        "idempotent": True,
        "open_world": True,
    }
    text = cli(fresh.project, "tools", "pr_merged").stdout
    assert "[side effects, not destructive, idempotent]" in text
    fresh.model.add(*webhook_conversation(101, SETTINGS))
    fresh.run(webhook_trigger(101), "llm", dry_run=True)
    offered = {t["name"]: t["description"] for t in fresh.model.requests[0].tools}
    assert offered["github__pr_status"].endswith("[read-only]")
    assert offered["slack__add_reaction"].endswith("[side effects, not destructive, idempotent]")


def test_a_dry_run_of_the_script_reads_but_reacts_to_nothing(fresh: Setup, cli: Cli) -> None:
    record = fresh.run(dry_run=True)
    assert record.status == "succeeded", record.error
    assert record.mode == "dry_run"
    assert fresh.slack.reactions_added == []
    methods = [c.method for c in fresh.slack.calls]
    assert "conversations.history" in methods and "reactions.add" not in methods
    assert fresh.github.calls, "reads still reach GitHub"
    calls = _calls(record)
    planned = [c for c in calls if c["tool"] == "slack.add_reaction"]
    assert {(c["arguments"]["ts"], c["arguments"]["name"]) for c in planned} == SWEEP
    assert all(c["source"] == "planned" and c["executed"] is False for c in planned)
    reads = [c for c in calls if c["tool"] != "slack.add_reaction"]
    assert reads and all(c["executed"] for c in reads)
    # The script was answered with the dry-run stand-in, so it went on as if it had reacted.
    assert {(a["ts"], a["reaction"]) for a in record.output["added"]} == SWEEP
    shown = cli(fresh.project, "runs", "show", record.id)
    assert "DRY RUN" in shown.stdout and "[planned: dry run, not executed]" in shown.stdout


def test_a_dry_run_of_the_llm_reacts_to_nothing_either(fresh: Setup) -> None:
    fresh.model.add(*webhook_conversation(101, SETTINGS))
    record = fresh.run(webhook_trigger(101), "llm", dry_run=True)
    assert record.status == "succeeded", record.error
    assert fresh.slack.reactions_added == []
    results = [r for q in fresh.model.requests for r in q.tool_results()]
    assert any('"dry_run": true' in str(r["content"]) for r in results), results
    # What slack.add_reaction declares for dry runs, shaped as its real answer ("ok").
    planned = [json.loads(r["content"]) for r in results if '"dry_run"' in str(r["content"])]
    assert planned and all(p == {"ok": True, "dry_run": True} for p in planned), planned


HOSTILE = """
import os
from tandem_sdk import ToolHostClient

def handler(trigger, tools, virtual_files, subagent):
    token = open(os.environ["TANDEM_TOKEN_FILE"]).read().strip()
    own = ToolHostClient(os.environ["TANDEM_TOOLHOST"], token)
    ts = "1764460800.000100"
    direct = own.call_tool("slack.add_reaction", {"channel": "eng", "ts": ts, "name": "a"})
    # Pretend to be the host's subagent, hoping for other rules:
    from tandem_sdk._pb import toolhost_pb2
    from tandem_sdk._convert import call_request
    forged = own._stub.CallTool(
        call_request("slack.add_reaction", {"channel": "eng", "ts": ts, "name": "b"}),
        metadata=own._metadata + (("tandem-subagent", "sub-0000000000000000"),),
    )
    proxied = tools.slack.add_reaction(channel="eng", ts=ts, name="c")
    return {"direct": direct, "forged": forged.result_json, "proxied": proxied}
"""


def test_a_hostile_script_cannot_bypass_a_dry_run(fresh: Setup) -> None:
    folder = fresh.project.root / "workflows" / "hostile"
    folder.mkdir(exist_ok=True)
    (folder / "script.py").write_text(HOSTILE)
    (folder / "workflow.yaml").write_text(
        "coordinator: script\ncoordinator_script: script.py\ntools: [slack.*]\n"
    )
    fresh.daemon.client.stub.Reload(control_pb2.ReloadRequest())
    run_id = fresh.daemon.client.trigger("hostile", None, None, dry_run=True)
    record = fresh.wait(run_id)
    assert record.status == "succeeded", record.error
    assert fresh.slack.reactions_added == []
    assert all(json.loads(json.dumps(v)) for v in record.output.values())
    assert record.output["direct"]["dry_run"] is True
    assert json.loads(record.output["forged"])["dry_run"] is True
    calls = _calls(record)
    assert [c["source"] for c in calls] == ["planned"] * 3
    assert not any("subagent" in c for c in calls), "a forged subagent id is not honoured"


def test_replaying_a_recorded_llm_run_with_the_script(fresh: Setup, cli: Cli) -> None:
    fresh.model.add(*webhook_conversation(101, SETTINGS))
    recorded = fresh.run(webhook_trigger(101), "llm")
    assert recorded.status == "succeeded", recorded.error
    assert {(r.ts, r.name) for r in fresh.slack.reactions_added} == WEBHOOK_101
    fresh.slack.reset()
    seen_by_github = len(fresh.github.calls)

    agree = cli(fresh.project, "replay", recorded.id, "--coordinator", "script", "--json")
    assert agree.returncode == 0, agree.stdout + agree.stderr
    result = json.loads(agree.stdout)
    assert result["agree"] is True
    kinds = {entry["kind"] for entry in result["diff"]}
    assert kinds <= {"same", "moved"}, result["diff"]
    assert fresh.slack.reactions_added == [], "a replay performs no side effect"
    assert len(fresh.github.calls) == seen_by_github, "reads come from the recording"
    replay = fresh.daemon.client.run(result["replay"])
    assert replay.mode == "replay" and replay.source_run == recorded.id
    assert {c["source"] for c in _calls(replay)} == {"recording"}

    # A candidate script that reacts with another emoji: a precise diff, and exit 1.
    candidate = fresh.project.root / "candidate" / "pr_merged"
    shutil.copytree(fresh.project.root / "workflows" / "pr_merged", candidate)
    settings = json.loads((candidate / "files" / "settings.json").read_text())
    settings["reactions"]["merged"] = "shipit"
    (candidate / "files" / "settings.json").write_text(json.dumps(settings))
    differ = cli(
        fresh.project,
        "replay",
        recorded.id,
        "--coordinator",
        "script",
        "--workflow",
        str(candidate),
    )
    assert differ.returncode == 1, differ.stdout + differ.stderr
    assert "plans differ" in differ.stdout
    # The script reacts newest first; its first :shipit: has no recorded answer
    # (not_recorded), which it does not catch, so the run stops there.
    expected = [
        '~ slack.add_reaction(channel="eng", ts="1764461160.000700", name="merged")\n'
        '      now slack.add_reaction(channel="eng", ts="1764461160.000700", name="shipit")',
        '- slack.add_reaction(channel="eng", ts="1764460920.000300", name="merged")',
    ]
    for line in expected:
        assert line in differ.stdout, differ.stdout
    assert "(2 same, 1 missing, 1 changed)" in differ.stdout
    assert "not_recorded" in differ.stdout  # the replayed side's error, beside the output
    assert fresh.slack.reactions_added == []


def test_unrecorded_calls_in_a_replay(fresh: Setup, cli: Cli) -> None:
    # Recorded: the LLM on the webhook for 101. Replayed: the same trigger through a script
    # that asks about pull request 104 (never recorded) and reacts to an unrelated message.
    fresh.model.add(*webhook_conversation(101, SETTINGS))
    recorded = fresh.run(webhook_trigger(101), "llm")
    assert recorded.status == "succeeded", recorded.error
    candidate = fresh.project.root / "candidate2" / "pr_merged"
    shutil.copytree(fresh.project.root / "workflows" / "pr_merged", candidate)
    (candidate / "script.py").write_text(
        """
from tandem_sdk import errors

def handler(trigger, tools, virtual_files, subagent):
    out = {}
    for name, call in {
        "read": lambda: tools.github.pr_status(url="https://github.com/acme/widgets/pull/104"),
        "write": lambda: tools.slack.add_reaction(channel="eng", ts="1764460800.000100", name="x"),
    }.items():
        try:
            out[name] = {"ok": call()}
        except errors.ToolError as error:
            out[name] = {"type": error.type, "message": str(error)}
    return out
"""
    )
    fresh.slack.reset()
    before = len(fresh.github.calls)
    strict = cli(fresh.project, "replay", recorded.id, "--workflow", str(candidate), "--json")
    assert strict.returncode == 1
    out = fresh.daemon.client.run(json.loads(strict.stdout)["replay"]).output
    assert out["read"]["type"] == "not_recorded" and "pull/104" in out["read"]["message"]
    assert "--live-reads" in out["read"]["message"]
    assert out["write"]["type"] == "not_recorded"
    assert len(fresh.github.calls) == before
    live = cli(
        fresh.project, "replay", recorded.id, "--workflow", str(candidate), "--live-reads", "--json"
    )
    out = fresh.daemon.client.run(json.loads(live.stdout)["replay"]).output
    assert out["read"]["ok"]["state"] == "merged"
    assert len(fresh.github.calls) == before + 1, "the unrecorded read ran live"
    assert out["write"]["type"] == "not_recorded", "a side effect never runs in a replay"
    assert fresh.slack.reactions_added == []
    diff = json.loads(live.stdout)["diff"]
    changed = [
        (e["recorded"]["arguments"], e["replayed"]["arguments"])
        for e in diff
        if e["kind"] == "changed"
    ]
    assert (
        {"url": "https://github.com/acme/widgets/pull/101"},
        {"url": "https://github.com/acme/widgets/pull/104"},
    ) in changed
    assert [e["recorded"]["tool"] for e in diff if e["kind"] == "missing"] == [
        "slack.get_messages",
        "slack.add_reaction",
    ]


def test_replay_of_many_runs_prints_a_line_each(fresh: Setup, cli: Cli) -> None:
    for _ in range(2):
        fresh.slack.reset()
        assert fresh.run().status == "succeeded"
    result = cli(fresh.project, "replay", "--workflow", "pr_merged", "--last", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[-1] == "agreed 2 of 2", result.stdout


def test_an_exported_run_drives_the_sdk_test_helper(fresh: Setup, tmp_path: Path, cli: Cli) -> None:
    from tandem_sdk.testing import assert_replays, replay_fixture

    record = fresh.run()
    assert record.status == "succeeded", record.error
    exported = cli(fresh.project, "runs", "export", record.id, str(tmp_path))
    assert exported.returncode == 0, exported.stderr
    fixture = Path(exported.stdout.strip())
    data = json.loads(fixture.read_text())
    assert data["fixture"] == 1 and data["files"]["settings.json"]
    assert data["calls"][0]["tool"] == "slack.get_messages"
    script = fresh.project.root / "workflows" / "pr_merged" / "script.py"
    run = assert_replays(script, fixture)
    assert run.output == record.output

    # Flag the reaction to the message that links only 102 (closed, unmerged) as wrong.
    index = next(
        i + 1
        for i, c in enumerate(data["calls"])
        if c["tool"] == "slack.add_reaction" and c["arguments"]["name"] == "x"
    )
    flagged = cli(
        fresh.project, "runs", "flag", record.id, "reacted to a closed PR", "--call", str(index)
    )
    assert flagged.returncode == 0, flagged.stderr
    listed = cli(fresh.project, "runs", "--flagged", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [record.id]
    again = cli(fresh.project, "runs", "export", record.id, str(tmp_path / "flagged"))
    flagged_fixture = Path(again.stdout.strip())
    with pytest.raises(AssertionError) as failure:
        assert_replays(script, flagged_fixture)
    assert "slack.add_reaction" in str(failure.value)
    assert replay_fixture(script, flagged_fixture).flagged_repeated


def test_results_over_the_recording_cap_are_marked_and_not_guessed(
    tmp_path_factory: pytest.TempPathFactory,
    cli: Cli,
) -> None:
    setup = Setup(
        tmp_path_factory.mktemp("capped") / "project", "record:\n  max_result_bytes: 300\n"
    )
    try:
        record = setup.run()
        assert record.status == "succeeded", record.error
        results = {r["tool"]: r for r in _calls(record, "tool.result")}
        assert results["slack.get_messages"]["result_over_cap"] > 300
        assert "result" not in results["slack.get_messages"]
        replay = cli(setup.project, "replay", record.id, "--json")
        assert replay.returncode == 1
        replayed = setup.daemon.client.run(json.loads(replay.stdout)["replay"])
        assert replayed.status == "failed"
        assert "result_not_recorded" in (replayed.error or "")
    finally:
        setup.close()
