"""The LLM coordinator from the command line: the example workflow run by the model with
`--coordinator llm`, and what happens without an API key."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import REPO, Project, tandem
from llm_fixtures import LlmHost, llm_host
from tandem.cli.overview import model_key_warnings
from tandem.plugins.manifest import read_manifest
from tandem.testing import AnthropicStandIn, Reply
from tandem_sdk.errors import DefinitionError

NO_KEY = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}


def _fill_template(body: dict[str, Any]) -> Reply:
    """The model's last turn: the template read with files.read, filled with the count."""
    count_result, template_result = (b["content"] for b in body["messages"][-1]["content"])
    template = json.loads(template_result)
    return Reply.text(template.format(name="Ada", count=json.loads(count_result)).strip())


def test_hello_runs_with_either_coordinator(project: Project) -> None:
    shutil.copytree(REPO / "workflows" / "hello", project.root / "workflows" / "hello")
    replies = [
        Reply.tool_use(
            ("state__increment", {"key": "greeted:Ada"}), ("files__read", {"path": "greeting.md"})
        ),
        Reply.dynamic(_fill_template),
    ]
    with AnthropicStandIn(replies) as api:
        env = {**NO_KEY, **api.env}
        by_model = tandem(
            project, "run", "hello", "--coordinator", "llm", "--payload", '{"name": "Ada"}',
            "--json", env=env,
        )  # fmt: skip
        assert by_model.returncode == 0, by_model.stdout + by_model.stderr
        record = json.loads(by_model.stdout)
        assert record["coordinator"] == "llm"
        assert record["output"] == "Hello, Ada! You have been greeted 1 time(s)."
        offered = {t["name"] for t in api.requests[0].tools}
        assert {"state__increment", "files__read", "files__list"} <= offered
        assert "greeted:<name>" in api.requests[0].body["system"][0]["text"]
        assert api.problems == []

        # The script sees the state the model left: the same tools, the same plugin.
        by_script = tandem(project, "run", "hello", "--payload", '{"name": "Ada"}', "--json")
        assert by_script.returncode == 0, by_script.stdout + by_script.stderr
        assert json.loads(by_script.stdout)["output"]["count"] == 2


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmHost]:
    def define(project: Any) -> None:
        project.workflow("asks_model", prompt="Say hello.")
        project.workflow(
            "asks_subagent",
            script="""
            from tandem_sdk import errors

            def handler(trigger, tools, virtual_files, subagent):
                try:
                    return subagent("Say hello.")
                except errors.SubagentError as error:
                    return {"error": type(error).__name__, "message": str(error)}
            """,
        )

    root = tmp_path_factory.mktemp("keyless") / "project"
    with llm_host(root, define, ANTHROPIC_API_KEY="") as host:
        yield host


def test_llm_run_without_a_key_fails_clearly(keyless: LlmHost) -> None:
    record = keyless.daemon.run("asks_model")

    assert record.status == "failed"
    assert record.error.startswith("coordinator llm needs an Anthropic API key")
    assert "ANTHROPIC_API_KEY" in record.error
    assert keyless.api.requests == []


def test_subagent_without_a_key_is_a_subagent_error(keyless: LlmHost) -> None:
    record = keyless.daemon.run("asks_subagent")

    assert record.status == "succeeded", record.error
    assert record.output["error"] == "SubagentError"
    assert "ANTHROPIC_API_KEY" in record.output["message"]


def test_check_warns_about_a_missing_key(keyless: LlmHost) -> None:
    without = tandem(keyless.project, "check", env=NO_KEY)
    assert without.returncode == 0, without.stderr
    assert "warning: workflow asks_model uses coordinator llm" in without.stderr
    assert "asks_subagent" not in without.stderr


def test_no_warning_with_a_key_or_without_llm_workflows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-x")
    assert model_key_warnings(["asks_model"]) == []
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert model_key_warnings([]) == []
    assert len(model_key_warnings(["a", "b"])) == 2


def test_a_plugin_cannot_ask_for_the_model_key(project: Project) -> None:
    folder = project.plugin("greedy", "", secrets=["SLACK_TOKEN", "ANTHROPIC_API_KEY"])
    with pytest.raises(DefinitionError, match="ANTHROPIC_API_KEY is the daemon's own"):
        read_manifest(folder)
