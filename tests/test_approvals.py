"""Approvals: under the LLM coordinator, pr_merged's reactions wait for a person; the
reviewed script's do not. The host holds the call, whichever coordinator makes it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from conftest import Cli, eventually
from pr_merged_fixtures import SETTINGS, WEBHOOK_101, Setup, webhook_trigger
from tandem.cli.render import own_call
from tandem.store import RunRecord
from tandem.testing.pr_merged import webhook_conversation

POLICY = "approvals:\n  llm: [side_effects]\n  timeout_s: 20\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("approvals") / "project", start=False)
    yaml = setup.project.root / "workflows" / "pr_merged" / "workflow.yaml"
    yaml.write_text(yaml.read_text() + POLICY)
    setup.start()
    yield setup
    setup.close()


@pytest.fixture
def fresh(setup: Setup) -> Setup:
    setup.slack.reset()
    setup.model.reset()
    return setup


def _start_llm(setup: Setup) -> tuple[str, threading.Thread, list[RunRecord]]:
    setup.model.add(*webhook_conversation(101, SETTINGS))
    run_id = setup.daemon.client.trigger("pr_merged", webhook_trigger(101), "llm")
    done: list[RunRecord] = []
    waiter = threading.Thread(target=lambda: done.append(setup.wait(run_id)))
    waiter.start()
    return run_id, waiter, done


def _waiting(setup: Setup, run_id: str) -> list[int]:
    record = setup.daemon.client.run(run_id)
    asked = {e.data["call"] for e in record.events if e.kind == "approval.waiting"}
    decided = {e.data["call"] for e in record.events if e.kind == "approval.decided"}
    return sorted(asked - decided)


def test_an_llm_call_waits_then_runs_once_approved(fresh: Setup, cli: Cli) -> None:
    run_id, waiter, done = _start_llm(fresh)
    assert eventually(lambda: len(_waiting(fresh, run_id)) == 2), fresh.daemon.log
    assert fresh.slack.reactions_added == [], "nothing runs before a person says so"
    listed = cli(fresh.project, "runs", "--status", "waiting", "--json").stdout
    assert run_id in listed
    shown = cli(fresh.project, "runs", "show", run_id).stdout
    assert "WAITS for approval" in shown and f"tandem approve {run_id}" in shown
    first, _ = _waiting(fresh, run_id)
    approved = cli(fresh.project, "approve", run_id, str(first))
    assert approved.returncode == 0, approved.stderr
    assert eventually(lambda: len(fresh.slack.reactions_added) == 1)
    assert cli(fresh.project, "approve", run_id).returncode == 0  # every call left
    waiter.join(30)
    assert done[0].status == "succeeded", done[0].error
    assert {(r.ts, r.name) for r in fresh.slack.reactions_added} == WEBHOOK_101


def test_approvals_use_the_call_numbers_of_the_trace(fresh: Setup, cli: Cli) -> None:
    run_id, waiter, done = _start_llm(fresh)
    assert eventually(lambda: len(_waiting(fresh, run_id)) == 2), fresh.daemon.log
    shown = cli(fresh.project, "runs", "show", run_id).stdout
    numbered = {
        int(line.rsplit("(call ", 1)[1].rstrip(")")): line
        for line in shown.splitlines()
        if "tool.call" in line and "(call " in line
    }
    first, second = _waiting(fresh, run_id)
    for number in (first, second):
        assert "slack.add_reaction(" in numbered[number], (number, shown)
        assert f"call {number} (slack.add_reaction) WAITS" in shown
        assert f"tandem approve {run_id} {number} " in shown
    approved = cli(fresh.project, "approve", run_id, str(second))
    assert approved.returncode == 0, approved.stderr
    assert f"approved call(s) {second}" in approved.stdout
    assert eventually(lambda: _waiting(fresh, run_id) == [first])
    assert cli(fresh.project, "deny", run_id, str(first), "not that one").returncode == 0
    waiter.join(30)
    decided = {e.data["call"]: e.data for e in done[0].events if e.kind == "approval.decided"}
    assert decided[second]["approved"] and not decided[first]["approved"]
    # The denied call is marked, though its number in the trace is not its event's seq.
    calls = [e.seq for e in done[0].events if own_call(e)]
    assert calls[first - 1] != first and first not in calls, calls
    shown = cli(fresh.project, "runs", "show", run_id).stdout
    marked = [line for line in shown.splitlines() if line.endswith("DENIED")]
    assert len(marked) == 1 and marked[0].endswith(f"(call {first})  DENIED"), shown


def test_a_denial_is_a_tool_error_the_model_sees(fresh: Setup, cli: Cli) -> None:
    run_id, waiter, done = _start_llm(fresh)
    assert eventually(lambda: len(_waiting(fresh, run_id)) == 2), fresh.daemon.log
    waiting = _waiting(fresh, run_id)
    denied = cli(fresh.project, "deny", run_id, "not during the freeze")
    assert denied.returncode == 0, denied.stderr
    listed = denied.stdout.splitlines()[1:]  # each call denied, by number, tool, arguments
    assert [line.split()[:2] for line in listed] == [["call", str(n)] for n in waiting]
    assert all('slack.add_reaction({"channel":' in line for line in listed), listed
    waiter.join(30)
    assert done[0].status == "succeeded", done[0].error
    assert fresh.slack.reactions_added == []
    results = [r for q in fresh.model.requests for r in q.tool_results()]
    denials = [r for r in results if r.get("is_error") and "not during the freeze" in str(r)]
    assert len(denials) == 2, results
    assert "denied" in str(denials[0]["content"])


def test_no_decision_in_time_is_a_clear_denial(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    setup = Setup(tmp_path_factory.mktemp("approval-timeout") / "project", start=False)
    yaml = setup.project.root / "workflows" / "pr_merged" / "workflow.yaml"
    yaml.write_text(yaml.read_text() + "approvals:\n  llm: [slack.add_reaction]\n  timeout_s: 1\n")
    setup.start()
    try:
        _, waiter, done = _start_llm(setup)
        waiter.join(60)
        record = done[0]
        assert record.status == "succeeded", record.error
        decided = [e.data for e in record.events if e.kind == "approval.decided"]
        assert [d["approved"] for d in decided] == [False, False]
        assert decided[0]["reason"] == "no decision before the deadline"
        results = [r for q in setup.model.requests for r in q.tool_results() if r.get("is_error")]
        told = str(results[0]["content"])
        assert "no decision before the deadline" in told and "a person denied" not in told
        assert setup.slack.reactions_added == []
    finally:
        setup.close()


def test_the_reviewed_script_is_not_held(fresh: Setup) -> None:
    record = fresh.run(webhook_trigger(101), "script")
    assert record.status == "succeeded", record.error
    assert not any(e.kind.startswith("approval.") for e in record.events)
    assert {(r.ts, r.name) for r in fresh.slack.reactions_added} == WEBHOOK_101
