"""Capability parity, as a test: the model is offered exactly the tools a script of the
same workflow gets from ListTools, is refused out-of-scope tools in the same way, and
reaches the run only through ToolHost.

The host runs in this process so that every entry into a run's tools can be checked to
come from inside a ToolHost RPC: a tool path that bypasses ToolHost (the LLM loop calling
the run directly, say) fails `test_every_tool_access_comes_through_toolhost`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import Project
from llm_fixtures import UTIL_PLUGIN, VAULT_PLUGIN
from tandem.host import Host
from tandem.llm.naming import from_api_name
from tandem.server.toolhost import ToolHostServicer
from tandem.session import RunSession
from tandem.store import RunRecord
from tandem.testing import AnthropicStandIn, Reply

SCRIPT = """
from tandem_sdk import errors

def handler(trigger, tools, virtual_files, subagent):
    try:
        tools.vault.open_door()
        refusal = None
    except errors.TandemError as error:
        refusal = f"{type(error).__name__}: {error}"
    offered = [
        {
            "name": t.name,
            "description": t.description,
            "behaviour": t.annotations.describe(),
            "input_schema": t.input_schema,
        }
        for t in tools.describe()
    ]
    return {"offered": offered, "refusal": refusal}
"""
PROMPT = "Do what the parity test needs."
RPCS = ("GetRun", "ListTools", "CallTool", "ListFiles", "ReadFile", "Log", "Subagent")
# Every way into a run's tools and files.
ENTRIES = ("tools_in_scope", "resolve_tool", "call_tool", "list_files", "read_file")
_rpc: contextvars.ContextVar[str | None] = contextvars.ContextVar("rpc", default=None)


@dataclass
class Observed:
    script: RunRecord
    llm: RunRecord
    api: AnthropicStandIn
    entries: list[tuple[str, str, str | None]] = field(default_factory=list)


def _inside_rpc(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: Any) -> Any:
        token = _rpc.set(name)
        try:
            return await method(self, request, context)
        finally:
            _rpc.reset(token)

    return wrapper


def _watched(name: str, method: Callable[..., Any], seen: list[Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self: RunSession, *args: Any, **kwargs: Any) -> Any:
            seen.append((self.coordinator, name, _rpc.get()))
            return await method(self, *args, **kwargs)

        return async_wrapper

    @functools.wraps(method)
    def wrapper(self: RunSession, *args: Any, **kwargs: Any) -> Any:
        seen.append((self.coordinator, name, _rpc.get()))
        return method(self, *args, **kwargs)

    return wrapper


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    project = Project(tmp_path_factory.mktemp("parity") / "project")
    project.plugin("util", UTIL_PLUGIN)
    project.plugin("vault", VAULT_PLUGIN)
    project.workflow(
        "parity",
        script=SCRIPT,
        prompt=PROMPT,
        tools=["util.add", "util.echo"],
        files={"notes.md": "remember the milk\n"},
    )
    with pytest.MonkeyPatch.context() as patch, AnthropicStandIn() as api:
        seen: list[tuple[str, str, str | None]] = []
        for rpc in RPCS:
            patch.setattr(ToolHostServicer, rpc, _inside_rpc(rpc, getattr(ToolHostServicer, rpc)))
        for entry in ENTRIES:
            patch.setattr(RunSession, entry, _watched(entry, getattr(RunSession, entry), seen))
        for name, value in api.env.items():
            patch.setenv(name, value)
        api.add(
            Reply.tool_use(("vault__open_door", {}), ("files__read", {"path": "notes.md"})),
            Reply.text("done"),
        )
        script, llm = asyncio.run(_run_both(project))
        yield Observed(script, llm, api, seen)


async def _run_both(project: Project) -> tuple[RunRecord, RunRecord]:
    host = Host(project.config, daemon=False)
    await host.start()
    try:
        script = await host.runs.wait(host.runs.trigger("parity", None, "script").id)
        llm = await host.runs.wait(host.runs.trigger("parity", None, "llm").id)
        return script, llm
    finally:
        await host.stop(grace=0)


def test_both_runs_succeeded(observed: Observed) -> None:
    assert observed.script.status == "succeeded", observed.script.error
    assert observed.llm.status == "succeeded", observed.llm.error
    assert observed.api.problems == []


def test_model_is_offered_exactly_what_list_tools_gives_a_script(observed: Observed) -> None:
    offered_to_model = {
        from_api_name(t["name"]): (t.get("description", ""), t["input_schema"])
        for t in observed.api.requests[0].tools
    }
    # The API has no field for annotations: the model reads them after the description.
    offered_to_script = {
        t["name"]: (f"{t['description']}\n\n[{t['behaviour']}]", t["input_schema"])
        for t in observed.script.output["offered"]
    }
    assert offered_to_model == offered_to_script
    assert set(offered_to_script) == {"util.add", "util.echo", "files.list", "files.read"}


def test_out_of_scope_is_refused_identically(observed: Observed) -> None:
    to_model = observed.api.requests[1].tool_results()[0]
    assert to_model["is_error"] is True
    assert to_model["content"] == observed.script.output["refusal"]
    assert to_model["content"].startswith("ToolNotInScope: ")

    def refusals(record: RunRecord) -> list[dict[str, Any]]:
        return [e.data for e in record.events if e.kind == "tool.refused"]

    assert refusals(observed.llm) == refusals(observed.script) != []


def test_files_reach_the_model_as_tools(observed: Observed) -> None:
    read = observed.api.requests[1].tool_results()[1]
    assert read["content"] == '"remember the milk\\n"'
    assert "notes.md" in observed.api.requests[0].body["system"][0]["text"]


def test_every_tool_access_comes_through_toolhost(observed: Observed) -> None:
    by_coordinator = {c for c, _, _ in observed.entries}
    assert by_coordinator == {"script", "llm"}
    llm_entries = {(entry, rpc) for c, entry, rpc in observed.entries if c == "llm"}
    assert ("tools_in_scope", "ListTools") in llm_entries
    assert ("call_tool", "CallTool") in llm_entries
    outside = [e for e in observed.entries if e[2] is None]
    assert outside == [], f"tool access that bypassed ToolHost: {outside}"
