"""The subagent: a script asks the model for help, as a child of its run. Also: usage
accounting, and the API key that never reaches a script or a plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import tandem
from llm_fixtures import LlmHost, llm_host
from tandem.testing import AnthropicStandIn, Reply

# The `api` and `daemon` fixtures, built on this module's `llm`.
pytest_plugins = ["llm_fixtures"]

ASKING_SCRIPT = """
from tandem_sdk import errors

def handler(trigger, tools, virtual_files, subagent):
    try:
        answer = subagent(trigger["prompt"], **trigger.get("kwargs", {}))
    except errors.TandemError as error:
        return {"error": type(error).__name__, "message": str(error)}
    return {"answer": answer, "usage": subagent.last.usage}
"""
PLAIN_SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return tools.util.add(a=1, b=2)
"""
ENV_SCRIPT = """
import os

def handler(trigger, tools, virtual_files, subagent):
    return {"script": dict(os.environ), "plugin": tools.util.environment()}
"""
SUM_SCHEMA = {
    "type": "object",
    "properties": {"sum": {"type": "integer"}},
    "required": ["sum"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmHost]:
    def define(project: Any) -> None:
        project.workflow("asking", script=ASKING_SCRIPT, tools=["util.*"], model="claude-sub")
        project.workflow(
            "tight", script=ASKING_SCRIPT, tools=["util.*"], limits={"max_tokens": 2000}
        )
        project.workflow("plain", script=PLAIN_SCRIPT, tools=["util.add"])
        project.workflow("env_probe", script=ENV_SCRIPT, tools=["util.environment"])

    with llm_host(tmp_path_factory.mktemp("sub") / "project", define) as host:
        yield host


def events(record: Any, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in record.events if e.kind == kind]


def test_text_answer_as_a_child_of_the_run(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text("Two numbers, one and two."))
    record = daemon.run("asking", {"prompt": "Summarise", "kwargs": {"input": {"n": [1, 2]}}})

    assert record.status == "succeeded", record.error
    assert record.output["answer"] == "Two numbers, one and two."
    (request,) = api.requests
    assert request.body["model"] == "claude-sub"
    assert "tools" not in request.body  # no tools unless the script names some
    asked = request.messages[0]["content"][0]["text"]
    assert asked.startswith("Summarise") and '"n": [' in asked
    started, finished = (
        events(record, "subagent.started")[0],
        events(record, "subagent.finished")[0],
    )
    child = started["subagent"]
    assert [e["subagent"] for e in events(record, "model.response")] == [child]
    assert finished == {
        "subagent": child,
        "ok": True,
        "usage": record.output["usage"],
        "text": "Two numbers, one and two.",  # kept whole: what a replay answers with
        "output": None,
    }
    # The run's usage is the subagent's: its tokens count on the parent run.
    assert record.usage == record.output["usage"]
    assert record.usage["model_calls"] == 1 and record.usage["output_tokens"] > 0


def test_schema_answer_using_a_subset_of_the_run_tools(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(
        Reply.tool_use(("util__add", {"a": 2, "b": 3}), ("util__echo", {"text": "x"})),
        Reply.text('```json\n{"sum": 5}\n```'),
    )
    kwargs = {"schema": SUM_SCHEMA, "tools": ["util.add"], "input": [2, 3]}
    record = daemon.run("asking", {"prompt": "Add these", "kwargs": kwargs})

    assert record.status == "succeeded", record.error
    assert record.output["answer"] == {"sum": 5}
    assert [t["name"] for t in api.requests[0].tools] == ["util__add"]
    assert '"sum"' in api.requests[0].body["system"][0]["text"]
    added, echoed = api.requests[1].tool_results()
    assert added["content"] == "5" and "is_error" not in added
    # In the run's scope but not offered to this subagent: refused before ToolHost.
    assert echoed["is_error"] is True and "util__echo" in echoed["content"]
    [call] = events(record, "tool.call")
    assert (call["tool"], call["arguments"], call["executed"]) == (
        "util.add",
        {"a": 2, "b": 3},
        True,
    )
    # Marked as the subagent's own call, by the id its events carry.
    assert call["subagent"] == events(record, "subagent.started")[0]["subagent"]
    assert record.usage["model_calls"] == 2


def test_schema_mismatch_is_asked_again_once(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text('{"sum": "five"}'), Reply.text('{"sum": 5}'))
    record = daemon.run("asking", {"prompt": "Add", "kwargs": {"schema": SUM_SCHEMA}})

    assert record.status == "succeeded", record.error
    assert record.output["answer"] == {"sum": 5}
    retry = api.requests[1].messages[-1]["content"][0]["text"]
    assert retry.startswith("Your answer is not valid: sum: 'five' is not of type 'integer'")
    assert events(record, "subagent.retry")[0]["problem"].startswith("sum:")


def test_schema_mismatch_twice_is_a_subagent_error(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text('{"sum": "five"}'), Reply.text("five, I said"))
    record = daemon.run("asking", {"prompt": "Add", "kwargs": {"schema": SUM_SCHEMA}})

    assert record.status == "succeeded", record.error  # the script caught it
    assert record.output["error"] == "SubagentError"
    assert "did not match the schema, twice: it is not JSON" in record.output["message"]
    assert len(api.requests) == 2
    assert events(record, "subagent.finished")[0]["ok"] is False


def test_tools_outside_the_run_scope_are_refused(daemon: Any, api: AnthropicStandIn) -> None:
    record = daemon.run("asking", {"prompt": "Open it", "kwargs": {"tools": ["vault.*"]}})

    assert record.output["error"] == "ToolNotInScope"
    assert "'vault.*' names no tool in the scope of this run" in record.output["message"]
    assert api.requests == []


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.refusal("No."), "subagent: the model refused to continue: No."),
        (
            Reply.invalid_request("max_tokens: too large"),
            "subagent: the Anthropic API answered 400 invalid_request_error: max_tokens: too large",
        ),
    ],
)
def test_model_failures_are_subagent_errors(
    daemon: Any, api: AnthropicStandIn, reply: Reply, message: str
) -> None:
    api.add(reply)
    record = daemon.run("asking", {"prompt": "Help"})

    assert record.output == {"error": "SubagentError", "message": message}


def test_subagent_tokens_count_against_the_run_budget(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text("expensive", usage={"input_tokens": 2500}))
    record = daemon.run("tight", {"prompt": "Think hard"})

    assert record.output["error"] == "LimitExceeded"
    # Caught by the script or not, a spent budget fails the run.
    assert record.status == "failed"
    assert "max_tokens budget is 2000" in record.error
    assert record.usage["input_tokens"] == 2500


def test_a_script_run_without_subagent_uses_no_tokens(llm: LlmHost, daemon: Any) -> None:
    record = daemon.run("plain")

    assert record.status == "succeeded", record.error
    assert record.usage == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "model_calls": 0,
    }


def test_usage_is_shown_by_the_cli(llm: LlmHost, daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text("ok", usage={"input_tokens": 1234, "output_tokens": 56}))
    record = daemon.run("asking", {"prompt": "Help"})

    shown = tandem(llm.project, "runs", "show", record.id)
    assert shown.returncode == 0, shown.stderr
    assert "model calls 1, tokens in 1234 out 56" in shown.stdout
    response_line = next(line for line in shown.stdout.splitlines() if "model.response" in line)
    assert "end_turn  in 1234 out 56" in response_line and "ok" in response_line
    listed = tandem(llm.project, "runs", "--json")
    row = next(r for r in json.loads(listed.stdout) if r["id"] == record.id)
    assert row["usage"]["input_tokens"] == 1234 and row["usage"]["model_calls"] == 1


def test_api_key_never_reaches_a_script_or_a_plugin(llm: LlmHost, daemon: Any) -> None:
    record = daemon.run("env_probe")

    assert record.status == "succeeded", record.error
    for side in ("script", "plugin"):
        environment = record.output[side]
        assert environment, side
        assert not [name for name in environment if name.startswith("ANTHROPIC")], side
        assert llm.api.api_key not in json.dumps(environment), side


def test_a_replay_answers_the_subagent_from_the_recording(
    llm: LlmHost, daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(
        Reply.tool_use(("util__add", {"a": 2, "b": 3})),
        Reply.text('{"sum": 5}'),
    )
    kwargs = {"schema": SUM_SCHEMA, "tools": ["util.add"], "input": [2, 3]}
    recorded = daemon.run("asking", {"prompt": "Add these", "kwargs": kwargs})
    assert recorded.output["answer"] == {"sum": 5}
    asked = len(api.requests)

    replay_id = daemon.client.replay(recorded.id)
    for _ in daemon.client.watch(replay_id):
        pass
    replay = daemon.client.run(replay_id)
    assert replay.status == "succeeded", replay.error
    assert len(api.requests) == asked, "no model call in a replay"
    assert replay.output["answer"] == {"sum": 5}
    assert replay.usage["model_calls"] == 0
    assert events(replay, "tool.call") == [], "the subagent's own calls are not replayed"
    assert events(replay, "subagent.finished")[0]["replayed"] is True

    # A script asking something else finds no recorded answer: SubagentError, by prompt.
    candidate = llm.project.root / "candidates" / "asking"
    candidate.mkdir(parents=True, exist_ok=True)
    (candidate / "script.py").write_text(
        ASKING_SCRIPT.replace('trigger["prompt"]', '"Multiply these"')
    )
    (candidate / "workflow.yaml").write_text(
        (llm.project.root / "workflows" / "asking" / "workflow.yaml").read_text()
    )
    replay_id = daemon.client.replay(recorded.id, workflow_path=str(candidate))
    for _ in daemon.client.watch(replay_id):
        pass
    answer = daemon.client.run(replay_id).output
    assert answer["error"] == "SubagentError"
    assert "'Multiply these'" in answer["message"] and "no recorded answer" in answer["message"]
    assert len(api.requests) == asked
