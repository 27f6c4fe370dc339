"""The Messages API stand-in, driven by the real `anthropic` client: wire format, checks,
errors, retries, caching and recording."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anthropic
import pytest
from tandem.testing import AnthropicStandIn, Reply, ToolUse

TOOLS = [
    {
        "name": "util__add",
        "description": "Add two integers.",
        "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "cache_control": {"type": "ephemeral"},
    }
]
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def api() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as stand_in:
        yield stand_in


def client(api: AnthropicStandIn, **options: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api.base_url, api_key=api.api_key, **options)  # type: ignore[arg-type]


def test_text_reply_has_the_wire_shape(api: AnthropicStandIn) -> None:
    api.add(Reply.text("hi there"))
    message = client(api).messages.create(model="claude-x", max_tokens=50, messages=HELLO)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "claude-x" and message.id.startswith("msg_")
    assert [(b.type, b.text) for b in message.content] == [("text", "hi there")]  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert api.requests[0].body["messages"] == HELLO
    assert api.requests[0].headers["anthropic-version"]
    assert api.problems == []


def test_tool_use_then_tool_result_round_trip(api: AnthropicStandIn) -> None:
    api.add(
        Reply.tool_use(("util__add", {"a": 1}), ToolUse("util__add", {"a": 2}, id="toolu_two")),
        Reply.text("3"),
    )
    llm = client(api)
    first = llm.messages.create(model="m", max_tokens=50, messages=HELLO, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("util__add", {"a": 1}), ("util__add", {"a": 2})]
    assert uses[1].id == "toolu_two" and uses[0].id.startswith("toolu_")
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses]
    conversation = [*HELLO, first.to_param(), {"role": "user", "content": results}]
    second = llm.messages.create(model="m", max_tokens=50, messages=conversation, tools=TOOLS)
    assert second.content[0].text == "3"  # type: ignore[union-attr]
    assert api.requests[1].tool_results() == results
    # The tools' prefix was written to the cache by the first request, read by the second.
    assert first.usage.cache_creation_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens


def test_missing_tool_result_is_refused_like_the_api(api: AnthropicStandIn) -> None:
    api.add(Reply.tool_use(("util__add", {"a": 1})))
    llm = client(api)
    first = llm.messages.create(model="m", max_tokens=50, messages=HELLO, tools=TOOLS)
    conversation = [*HELLO, first.to_param(), {"role": "user", "content": "no results"}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        llm.messages.create(model="m", max_tokens=50, messages=conversation, tools=TOOLS)
    assert "tool_use` ids were found without `tool_result`" in str(caught.value)
    assert len(api.problems) == 1


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"messages": []}, "at least one message"),
        ({"tools": [{"name": "util.add", "input_schema": {"type": "object"}}]}, "pattern"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "first message"),
        (
            {"system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}] * 5},
            "maximum of 4 blocks",
        ),
    ],
)
def test_malformed_requests_get_400(api: AnthropicStandIn, params: dict, fragment: str) -> None:
    request = {"model": "m", "max_tokens": 10, "messages": HELLO, **params}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(api).messages.create(**request)
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert fragment in str(caught.value)


def test_wrong_key_is_401(api: AnthropicStandIn) -> None:
    llm = anthropic.Anthropic(base_url=api.base_url, api_key="sk-wrong")
    with pytest.raises(anthropic.AuthenticationError):
        llm.messages.create(model="m", max_tokens=10, messages=HELLO)


def test_overloaded_is_retried_by_the_client(api: AnthropicStandIn) -> None:
    api.add(Reply.overloaded(), Reply.text("after retry"))
    message = client(api).messages.create(model="m", max_tokens=10, messages=HELLO)
    assert message.content[0].text == "after retry"  # type: ignore[union-attr]
    assert len(api.requests) == 2
    assert api.requests[1].headers["x-stainless-retry-count"] == "1"


def test_overloaded_without_retries_reaches_the_caller(api: AnthropicStandIn) -> None:
    api.add(Reply.overloaded())
    with pytest.raises(anthropic.APIStatusError) as caught:
        client(api, max_retries=0).messages.create(model="m", max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_refusal_and_dynamic_replies(api: AnthropicStandIn) -> None:
    api.add(
        Reply.dynamic(lambda body: Reply.text(f"{len(body['messages'])} message(s)")),
        Reply.refusal("I can't help with that."),
    )
    llm = client(api)
    assert llm.messages.create(model="m", max_tokens=10, messages=HELLO).content[0].text == (  # type: ignore[union-attr]
        "1 message(s)"
    )
    refused = llm.messages.create(model="m", max_tokens=10, messages=HELLO)
    assert refused.stop_reason == "refusal"


def test_script_exhausted_is_a_recorded_problem(api: AnthropicStandIn) -> None:
    with pytest.raises(anthropic.BadRequestError, match="no scripted reply left"):
        client(api).messages.create(model="m", max_tokens=10, messages=HELLO)
    assert api.problems and "no scripted reply" in api.problems[0]


def test_stalled_reply_is_released_by_stop() -> None:
    stand_in = AnthropicStandIn([Reply.stall()]).start()
    failed = threading.Event()

    def call() -> None:
        try:
            client(stand_in, max_retries=0).messages.create(model="m", max_tokens=1, messages=HELLO)
        except anthropic.APIError:
            failed.set()

    caller = threading.Thread(target=call)
    caller.start()
    stand_in.stop()
    stand_in.stop()  # idempotent
    caller.join(30)
    assert failed.is_set()


def test_released_stall_answers_with_the_next_reply(api: AnthropicStandIn) -> None:
    release = threading.Event()
    api.add(Reply.stall(release), Reply.text("late"))
    answered: list[str] = []

    def call() -> None:
        message = client(api).messages.create(model="m", max_tokens=5, messages=HELLO)
        answered.append(message.content[0].text)  # type: ignore[union-attr]

    caller = threading.Thread(target=call)
    caller.start()
    release.set()
    caller.join(30)
    assert answered == ["late"]
