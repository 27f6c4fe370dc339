"""MCP servers as plugins, against real ones (mcp-server-time, mcp-server-git) and a probe
of our own, on one daemon: both coordinators call them, dry runs and approvals read their
annotations, bad configs are load errors at their workflows only, a server sees only its
declared environment, and a server that dies mid-call fails the call at once and comes
back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Daemon, Project, eventually
from tandem.testing import AnthropicStandIn, Reply
from tandem.testing.daemon import TANDEM
from tandem_sdk._pb import control_pb2

BIN = Path(sys.executable).parent
PROBE = Path(__file__).parent / "probe_server.py"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


class Setup:
    def __init__(self, project: Project, repo: Path, api: AnthropicStandIn, daemon: Daemon):
        self.project, self.repo, self.api, self.daemon = project, repo, api, daemon

    def run(self, workflow: str, coordinator: str | None = None, dry_run: bool = False) -> Any:
        return self.daemon.run(workflow, {"repo": str(self.repo)}, coordinator, dry_run=dry_run)

    def health(self) -> dict[str, Any]:
        return self.daemon.plugins()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("mcp")
    repo = base / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-qm", "first")
    project = Project(base / "project")
    servers = {
        "time": {"command": str(BIN / "mcp-server-time"), "args": ["--local-timezone=UTC"]},
        "git": {"command": str(BIN / "mcp-server-git"), "args": ["--repository", "${MCP_REPO}"]},
        "unset": {"command": "${MCP_NOWHERE_SET}"},
        "remote": {"type": "sse", "url": "http://127.0.0.1:1/sse"},
        "state": {"command": str(BIN / "mcp-server-time")},  # the built-in plugin's name
        "nostart": {"command": str(base / "no-such-server")},
    }
    (project.root / "tandem.yaml").write_text(yaml.safe_dump({"mcp_servers": servers}))
    probe = {"command": sys.executable, "args": [str(PROBE)], "env": {"PROBE_GIVEN": "given"}}
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"probe": probe}}))
    run_all = """
        def handler(trigger, tools, virtual_files, subagent):
            return {name: tools.call(name, args) for name, args in trigger["calls"]}
    """
    project.workflow(
        "clock",
        tools=["time.*", "git.git_status"],
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            return {
                "now": tools.time.get_current_time(timezone="Europe/Paris"),
                "status": tools.git.git_status(repo_path=trigger["repo"]),
            }
        """,
        prompt="Say what time it is and what the repository holds.",
    )
    project.workflow(
        "commit",
        tools=["git.*"],
        approvals={"llm": ["destructive"]},
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            repo = trigger["repo"]
            tools.git.git_add(repo_path=repo, files=["b.txt"])
            tools.git.git_commit(repo_path=repo, message="second")
            tools["git"]["git_reset"](repo_path=repo)
            return tools.git.git_status(repo_path=repo)
        """,
        prompt="Unstage everything.",
    )
    project.workflow("broken", tools=["unset.*"], script=run_all)
    project.workflow(
        "probe",
        tools=["probe.*"],
        script="""
        from tandem_sdk.errors import ToolUnavailable

        def handler(trigger, tools, virtual_files, subagent):
            if trigger.get("die"):
                try:
                    tools.probe.die()
                except ToolUnavailable as error:
                    return str(error)
            if trigger.get("grow"):
                return tools.probe.grow()
            return tools.probe.environ()
        """,
    )
    env = {"MCP_REPO": str(repo), "DAEMON_SECRET": "do-not-pass"}
    with AnthropicStandIn() as api:
        daemon = Daemon(project, env={**env, **api.env})
        try:
            yield Setup(project, repo, api, daemon)
        finally:
            daemon.close()


def _calls(record: Any) -> dict[str, dict[str, Any]]:
    return {e.data["tool"]: e.data for e in record.events if e.kind == "tool.call"}


def test_a_script_calls_real_servers_with_structured_results(setup: Setup) -> None:
    record = setup.run("clock")
    assert record.status == "succeeded", record.error
    now = record.output["now"]  # mcp-server-time's structuredContent, not its text
    assert now["timezone"] == "Europe/Paris" and "datetime" in now
    assert "working tree clean" in record.output["status"]
    version = _calls(record)["time.get_current_time"]["plugin_version"]
    assert version.startswith("mcp-time ") and " tools:" in version


def test_the_model_is_offered_and_calls_the_same_tools(setup: Setup) -> None:
    setup.api.reset()
    setup.api.add(
        Reply.tool_use(
            ("time__get_current_time", {"timezone": "UTC"}),
            ("git__git_status", {"repo_path": str(setup.repo)}),
        ),
        Reply.text("It is now, and the tree is clean."),
    )
    record = setup.run("clock", coordinator="llm")
    assert record.status == "succeeded", record.error
    offered = {tool["name"]: tool for tool in setup.api.requests[0].tools}
    assert offered["time__get_current_time"]["input_schema"]["required"] == ["timezone"]
    results = [r["content"] for r in setup.api.requests[1].tool_results()]
    assert json.loads(results[0])["timezone"] == "UTC"
    assert "working tree clean" in json.loads(results[1])


def test_a_dry_run_of_a_commit_leaves_the_repository_unchanged(setup: Setup) -> None:
    (setup.repo / "b.txt").write_text("two\n")
    state = lambda: (_git(setup.repo, "status", "--porcelain"), _git(setup.repo, "log"))  # noqa: E731
    before = state()
    record = setup.run("commit", dry_run=True)
    assert record.status == "succeeded", record.error
    calls = _calls(record)
    assert calls["git.git_status"]["executed"]  # read-only: it runs
    assert not any(calls[t]["executed"] for t in ("git.git_add", "git.git_commit", "git.git_reset"))
    assert state() == before
    (setup.repo / "b.txt").unlink()


def test_an_approval_holds_git_reset_for_the_model_and_not_for_the_script(setup: Setup) -> None:
    (setup.repo / "b.txt").write_text("two\n")
    by_script = setup.run("commit")  # git_reset is destructive: only the llm policy holds it
    assert by_script.status == "succeeded", by_script.error
    assert "second" in _git(setup.repo, "log", "--oneline")
    setup.api.reset()
    setup.api.add(Reply.tool_use(("git__git_reset", {"repo_path": str(setup.repo)})))
    client = setup.daemon.client
    run_id = client.trigger("commit", {"repo": str(setup.repo)}, "llm")
    waiting = next(e for e in client.watch(run_id) if e.kind == "approval.waiting")
    assert waiting.data["tool"] == "git.git_reset"
    client.cancel(run_id)


def test_bad_configs_are_load_errors_at_their_workflows_only(setup: Setup) -> None:
    workflows = setup.daemon.client.stub.ListWorkflows(control_pb2.ListWorkflowsRequest())
    errors = {w.name: w.error for w in workflows.workflows}
    assert "MCP_NOWHERE_SET" in errors["broken"] and "'unset'" in errors["broken"]
    assert not errors["clock"] and not errors["probe"] and not errors["commit"]
    plugin_errors = "\n".join(workflows.plugin_errors)
    assert "type sse" in plugin_errors
    assert "a plugin is named 'state' too" in plugin_errors
    health = setup.health()
    assert "no-such-server" in health["nostart"].load_error and not health["nostart"].up
    assert health["git"].up and health["git"].pid and health["state"].up
    listed = subprocess.run(
        [*TANDEM, "--project", str(setup.project.root), "tools"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "git.git_status(" in listed.stdout
    assert "not loaded: " in listed.stderr and "MCP_NOWHERE_SET" in listed.stderr, listed.stderr


def test_a_server_from_mcp_json_sees_only_its_declared_environment(setup: Setup) -> None:
    record = setup.run("probe")
    assert record.status == "succeeded", record.error
    seen = dict(record.output)
    assert seen["PROBE_GIVEN"] == "given"
    assert "DAEMON_SECRET" not in seen and "MCP_REPO" not in seen
    seen.pop("LC_CTYPE", None)  # set by the probe's own interpreter (PEP 538)
    assert set(seen) <= {"PROBE_GIVEN", "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}


def test_a_changed_tool_list_is_listed_again(setup: Setup) -> None:
    def offered() -> set[str]:
        request = control_pb2.ListWorkflowToolsRequest(workflow="probe")
        return {t.name for t in setup.daemon.client.stub.ListWorkflowTools(request).tools}

    assert "probe.extra" not in offered()
    client = setup.daemon.client
    run_id = client.trigger("probe", {"grow": True}, None)
    for _ in client.watch(run_id):
        pass
    assert eventually(lambda: "probe.extra" in offered())


def test_a_server_that_dies_mid_call_fails_it_at_once_and_restarts(setup: Setup) -> None:
    client = setup.daemon.client
    run_id = client.trigger("probe", {"die": True}, None)
    for _ in client.watch(run_id):
        pass
    record = client.run(run_id)
    assert record.status == "succeeded", record.error
    assert "mcp server 'probe' went away during the call" in record.output
    assert eventually(lambda: setup.health()["probe"].restarts >= 1 and setup.health()["probe"].up)
    assert setup.run("probe").status == "succeeded"
