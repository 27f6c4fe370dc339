"""Credentials in ANTHROPIC_BASE_URL (`http://user:password@gateway`) reach the gateway
and nothing else: not a model error (which a run's trace keeps), not a log line."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tandem.llm.api import ModelApi, ModelApiError
from tandem.testing.anthropic_api import AnthropicStandIn

ASK = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


async def _failure(api_key: str, url: str) -> str:
    model = ModelApi(api_key, url)
    try:
        with pytest.raises(ModelApiError) as failed:
            await model.create(**ASK)
    finally:
        await model.close()
    return str(failed.value)


def test_credentials_in_the_url_stay_out_of_errors_and_logs(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with AnthropicStandIn() as api:
        at = api.base_url.replace("http://", "http://user:secret@")
        answered = asyncio.run(_failure(api.api_key, at))
        sent = api.requests[0].headers.get("authorization")
    unreached = asyncio.run(_failure(api.api_key, at))  # nobody listens there now

    assert sent == "Basic dXNlcjpzZWNyZXQ="  # user:secret, as a gateway expects it
    assert "the Anthropic API answered 401" in answered
    assert "could not reach http://***@127.0.0.1:" in unreached
    assert caplog.records, "the SDK logged its requests"
    assert "secret" not in answered + unreached
    assert not [r.getMessage() for r in caplog.records if "secret" in r.getMessage()]
