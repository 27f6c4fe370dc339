"""LLM runs through a real daemon, real plugin processes and the real `anthropic` client,
against the Messages API stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from llm_fixtures import LlmHost, llm_host
from tandem.testing import AnthropicStandIn, Reply, ToolUse

# The `api` and `daemon` fixtures, built on this module's `llm`.
pytest_plugins = ["llm_fixtures"]

PROMPT = "You add numbers with the util tools and answer with the sum."
WORKFLOWS: dict[str, dict[str, Any]] = {
    "adder": {"tools": ["util.add"], "model": "claude-test-1"},
    "meeting": {"tools": ["util.*"]},
    "recover": {"tools": ["util.*"]},
    "scoped": {"tools": ["util.add"]},
    "chatty": {"tools": ["util.add"], "limits": {"max_turns": 2}},
    "hungry": {"tools": ["util.add"], "limits": {"max_tokens": 5000}},
    "busy": {"tools": ["util.add"], "limits": {"max_tool_calls": 1}},
    "plain": {},
    "slow": {"limits": {"timeout_s": 0.5}},
    "typed": {"input_schema": {"type": "object", "properties": {"numbers": {"type": "array"}}}},
}


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmHost]:
    def define(project: Any) -> None:
        for name, fields in WORKFLOWS.items():
            project.workflow(name, prompt=PROMPT, **fields)

    with llm_host(tmp_path_factory.mktemp("llm") / "project", define) as host:
        yield host


def kinds(record: Any, prefix: str) -> list[dict[str, Any]]:
    return [e.data for e in record.events if e.kind == prefix]


def test_multi_turn_run_calls_tools_and_ends(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(
        Reply.tool_use(("util__add", {"a": 2, "b": 3}), text="Adding."),
        Reply.tool_use(("util__add", {"a": 5, "b": 10})),
        Reply.text("The sum is 15."),
    )
    record = daemon.run("adder", {"numbers": [2, 3, 10]})

    assert record.status == "succeeded", record.error
    assert record.output == "The sum is 15."
    assert api.problems == []
    first, second, third = api.requests
    assert first.body["model"] == "claude-test-1"
    assert PROMPT in first.body["system"][0]["text"]
    assert '"numbers"' in first.body["system"][1]["text"]
    assert [t["name"] for t in first.tools] == ["util__add"]
    assert second.tool_results()[0]["content"] == "5" and "is_error" not in second.tool_results()[0]
    assert third.tool_results()[0]["content"] == "15"
    calls = kinds(record, "tool.call")
    assert all(len(call.pop("plugin_version")) == 12 for call in calls)
    assert calls == [
        {"tool": "util.add", "executed": True, "source": "plugin", "arguments": {"a": 2, "b": 3}},
        {"tool": "util.add", "executed": True, "source": "plugin", "arguments": {"a": 5, "b": 10}},
    ]
    responses = kinds(record, "model.response")
    assert [r["stop_reason"] for r in responses] == ["tool_use", "tool_use", "end_turn"]
    assert all(r["latency_ms"] >= 0 for r in responses)
    assert responses[0]["tool_uses"][0]["tool"] == "util.add"
    assert record.usage["model_calls"] == 3
    assert record.usage["output_tokens"] > 0
    # Prompt caching: the tools, the system prompt and each turn are cache breakpoints, so
    # the first turn writes the cache and the later turns read it.
    assert first.tools[-1]["cache_control"] == {"type": "ephemeral"}
    assert first.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert responses[0]["usage"]["cache_write_tokens"] > 0
    assert responses[1]["usage"]["cache_read_tokens"] > 0
    total = {k: sum(r["usage"][k] for r in responses) for k in responses[0]["usage"]}
    assert {k: record.usage[k] for k in total} == total


def results_of(api: AnthropicStandIn, request: int) -> list[dict[str, Any]]:
    return api.requests[request].tool_results()


def test_parallel_tool_uses_run_concurrently_and_are_answered_in_order(
    daemon: Any, api: AnthropicStandIn
) -> None:
    # `util.meet` returns only when three calls are in flight at once: run one by one,
    # the first would fail after its barrier's timeout.
    api.add(
        Reply.tool_use(
            ToolUse("util__meet", {"name": "first", "parties": 3}, id="toolu_a"),
            ToolUse("util__meet", {"name": "second", "parties": 3}, id="toolu_b"),
            ToolUse("util__meet", {"name": "third", "parties": 3}, id="toolu_c"),
        ),
        Reply.text("all met"),
    )
    record = daemon.run("meeting")

    assert record.status == "succeeded", record.error
    results = results_of(api, 1)
    assert [(r["tool_use_id"], r["content"], r.get("is_error")) for r in results] == [
        ("toolu_a", '"first"', None),
        ("toolu_b", '"second"', None),
        ("toolu_c", '"third"', None),
    ]
    response = kinds(record, "model.response")[0]
    assert [u["id"] for u in response["tool_uses"]] == ["toolu_a", "toolu_b", "toolu_c"]
    assert len(kinds(record, "tool.result")) == 3


def test_tool_errors_go_back_to_the_model_which_recovers(
    daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(
        Reply.tool_use(("util__explode", {"reason": "disk on fire"})),
        Reply.tool_use(("util__add", {"a": "two", "b": 2})),
        Reply.tool_use(("util__add", {"a": 2, "b": 2})),
        Reply.text("4"),
    )
    record = daemon.run("recover")

    assert record.status == "succeeded", record.error
    assert record.output == "4"
    failed, invalid = results_of(api, 1)[0], results_of(api, 2)[0]
    assert failed["is_error"] is True
    assert failed["content"] == "LookupError: disk on fire"
    assert invalid["is_error"] is True
    assert invalid["content"].startswith("InvalidArguments: util.add: a:")
    last = {k: v for k, v in results_of(api, 3)[0].items() if k != "cache_control"}
    assert last == {
        "type": "tool_result",
        "tool_use_id": api.requests[3].messages[-2]["content"][0]["id"],
        "content": "4",
    }
    outcomes = kinds(record, "tool.result")
    assert [o["ok"] for o in outcomes] == [False, True]
    assert outcomes[0]["error_type"] == "LookupError"
    assert kinds(record, "tool.refused")[0]["error"] == "InvalidArguments"


def test_out_of_scope_and_unknown_tools_are_refused_as_tool_results(
    daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(
        Reply.tool_use(
            ("vault__open_door", {}), ("util__nope", {}), ("not_a_tool", {}), ("util__echo", {})
        ),
        Reply.text("I may not."),
    )
    record = daemon.run("scoped")

    assert record.status == "succeeded", record.error
    out_of_scope, unknown, unmapped, unlisted = results_of(api, 1)
    assert all(r["is_error"] for r in (out_of_scope, unknown, unmapped, unlisted))
    assert out_of_scope["content"] == (
        "ToolNotInScope: tool 'vault.open_door' is not in the scope of workflow 'scoped'"
    )
    assert unknown["content"].startswith("NotFound:")
    assert unmapped["content"] == "no tool named 'not_a_tool' is offered here"
    assert unlisted["content"].startswith("ToolNotInScope:")
    refused = {e["tool"]: e["error"] for e in kinds(record, "tool.refused")}
    assert refused == {
        "vault.open_door": "ToolNotInScope",
        "util.nope": "NotFound",
        "not_a_tool": "NotOffered",
        "util.echo": "ToolNotInScope",
    }
    assert kinds(record, "tool.call") == []  # nothing out of scope reached a plugin


def test_the_model_is_shown_the_input_schema(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text("Nothing to add."))
    record = daemon.run("typed", {"numbers": []})

    assert record.status == "succeeded", record.error
    stable = api.requests[0].body["system"][0]["text"]
    assert "input_schema" in stable
    assert json.loads(stable[stable.index("{") :]) == WORKFLOWS["typed"]["input_schema"]


def test_a_misspelled_tool_is_answered_with_the_close_offered_one(
    daemon: Any, api: AnthropicStandIn
) -> None:
    api.add(Reply.tool_use(("util__ad", {"a": 1, "b": 2})), Reply.text("Sorry."))
    record = daemon.run("scoped")

    assert record.status == "succeeded", record.error
    (told,) = results_of(api, 1)
    assert told["is_error"]
    assert told["content"] == "NotFound: no tool named 'util__ad' (did you mean util__add?)"


def test_max_turns_stops_the_run(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(*[Reply.tool_use(("util__add", {"a": 1, "b": 1}))] * 3)
    record = daemon.run("chatty")

    assert record.status == "failed"
    assert record.error == "the model did not finish within max_turns (2)"
    assert len(api.requests) == 2
    assert record.usage["model_calls"] == 2


def test_token_budget_stops_the_run(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(
        Reply.tool_use(("util__add", {"a": 1, "b": 1}), usage={"input_tokens": 4000}),
        Reply.tool_use(("util__add", {"a": 2, "b": 2}), usage={"input_tokens": 4000}),
        Reply.text("never sent"),
    )
    record = daemon.run("hungry")

    assert record.status == "failed"
    assert "max_tokens budget is 5000" in record.error
    assert len(api.requests) == 2
    assert record.usage["input_tokens"] == 8000
    # The second request may only ask for what is left of the budget.
    assert api.requests[1].body["max_tokens"] < 1000


def test_max_tool_calls_stops_the_run(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(
        Reply.tool_use(("util__add", {"a": 1, "b": 1})),
        Reply.tool_use(("util__add", {"a": 2, "b": 2})),
        Reply.text("never sent"),
    )
    record = daemon.run("busy")

    assert record.status == "failed"
    assert record.error.endswith("reached max_tool_calls (1)")
    assert len(api.requests) == 2


def test_overloaded_api_is_retried_then_succeeds(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.overloaded(), Reply.error(429, "rate_limit_error", "slow down"), Reply.text("ok"))
    record = daemon.run("plain")

    assert record.status == "succeeded", record.error
    assert record.output == "ok"
    assert len(api.requests) == 3  # the client's own retries: one model call in the trace
    assert record.usage["model_calls"] == 1
    assert "tools" not in api.requests[0].body  # a workflow without tools offers none


def test_api_error_fails_the_run_with_its_message(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.invalid_request("messages.0.content: something is off"))
    record = daemon.run("plain")

    assert record.status == "failed"
    assert record.error == (
        "the Anthropic API answered 400 invalid_request_error: messages.0.content: something is off"
    )
    assert len(api.requests) == 1  # a 400 is not retried
    assert kinds(record, "model.error")[0]["message"] == record.error


def test_overloaded_after_all_retries_fails_the_run(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(*[Reply.overloaded()] * 3)
    record = daemon.run("plain")

    assert record.status == "failed"
    assert record.error == "the Anthropic API answered 529 overloaded_error: Overloaded"
    assert len(api.requests) == 3


def test_refusal_fails_the_run(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.refusal("I can't help with that.", category="cyber"))
    record = daemon.run("plain")

    assert record.status == "failed"
    assert record.error == "the model refused to continue: I can't help with that."
    assert kinds(record, "model.response")[0]["stop_reason"] == "refusal"


def test_wall_timeout_stops_a_hanging_model(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.stall())
    record = daemon.run("slow")

    assert record.status == "timed_out"
    assert "timeout of 0.5s" in record.error


def test_answer_cut_off_at_max_tokens_fails_the_run(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text("The answer is", stop_reason="max_tokens"))
    record = daemon.run("plain")

    assert record.status == "failed"
    assert record.error == "the model's answer was cut off at max_tokens (8192 tokens)"
    assert api.requests[0].body["max_tokens"] == 8192


def test_paused_turn_is_sent_back_to_continue(daemon: Any, api: AnthropicStandIn) -> None:
    api.add(Reply.text("Working on it", stop_reason="pause_turn"), Reply.text("done"))
    record = daemon.run("plain")

    assert record.status == "succeeded", record.error
    assert record.output == "done"
    last = api.requests[1].messages[-1]
    assert last["role"] == "assistant" and last["content"][0]["text"] == "Working on it"
    assert api.problems == []
