"""The migration path on MCP tools, and the rest of an MCP server's life as a plugin, on one
daemon (hot reload on): an llm run of a workflow that uses real MCP servers
(mcp-server-time, mcp-server-git on a temporary repository) is recorded, shadowed by its
script, replayed, rewritten, exported as fixtures that replay in the workflow's tests, and
counted by the ledger; `tandem tools` and `tandem status` show MCP servers; a remote
server over streamable HTTP (tests/mcp/http_server.py) with a bearer token; and a change
to a server's config restarts that server only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Daemon, Project, eventually, tandem
from tandem.testing import AnthropicStandIn, Reply

BIN = Path(sys.executable).parent
HTTP_SERVER = Path(__file__).parent / "http_server.py"
TOKEN = "s3cret-token"
# MCPServer gives a tool that returns a str an output schema: its structured content.
ANSWERED = [{"result": "hi"}, {"result": "HI"}]

SCRIPT = """\
def handler(trigger, tools, virtual_files, subagent):
    repo = trigger["repo"]
    now = tools.time.get_current_time(timezone="UTC")
    status = tools.git.git_status(repo_path=repo)
    tools.git.git_add(repo_path=repo, files=[trigger["file"]])
    tools.git.git_commit(repo_path=repo, message=trigger["message"])
    return {"at": now["timezone"], "clean_before": "working tree clean" in status}
"""

REMOTE = """
from tandem_sdk.errors import ToolUnavailable

def handler(trigger, tools, virtual_files, subagent):
    try:
        return [tools.remote.echo(text="hi"), tools.remote.shout(text="hi")]
    except ToolUnavailable as error:
        return str(error)
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


class HttpServer:
    """tests/mcp/http_server.py in a subprocess, stopped and started again on its port."""

    def __init__(self) -> None:
        self.port = 0
        self.process = self._start()

    def _start(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(HTTP_SERVER), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={"HTTP_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        )
        assert process.stdout is not None
        self.port = int(process.stdout.readline())  # printed once it listens
        return process

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        self.kill()
        self.process = self._start()


class Setup:
    def __init__(
        self, project: Project, repo: Path, api: AnthropicStandIn, daemon: Daemon, http: HttpServer
    ) -> None:
        self.project, self.repo, self.api, self.daemon, self.http = project, repo, api, daemon, http
        self.primary: Any = None

    def run(self, workflow: str, payload: Any = None, dry_run: bool = False) -> Any:
        return self.daemon.run(workflow, payload, dry_run=dry_run)

    def health(self) -> dict[str, Any]:
        return self.daemon.plugins()

    def commits(self) -> int:
        return len(_git(self.repo, "log", "--oneline").splitlines())


def _servers(repo_arg: str = "${MCP_REPO}") -> dict[str, Any]:
    return {
        "git": {"command": str(BIN / "mcp-server-git"), "args": ["--repository", repo_arg]},
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("mcp-path")
    repo = base / "repo"
    repo.mkdir()
    for args in (("init", "-q"), ("config", "user.email", "t@e.com"), ("config", "user.name", "t")):
        _git(repo, *args)
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-qm", "first")
    http = HttpServer()
    url = f"http://127.0.0.1:{http.port}/mcp"
    project = Project(base / "project")
    servers = {
        **_servers(),
        "remote": {
            "type": "http",
            "url": url,
            "headers": {"Authorization": "Bearer ${HTTP_TOKEN}"},
            "annotations": {"echo": {"readOnlyHint": True}},  # the operator's word
        },
        "wrongkey": {"type": "http", "url": url, "headers": {"Authorization": "Bearer no"}},
    }
    (project.root / "tandem.yaml").write_text(yaml.safe_dump({"mcp_servers": servers}))
    time_server = {"command": str(BIN / "mcp-server-time"), "args": ["--local-timezone=UTC"]}
    (project.root / ".mcp.json").write_text(json.dumps({"mcpServers": {"time": time_server}}))
    project.workflow(
        "commit",
        coordinator="llm",
        shadow="script",
        tools=["time.get_current_time", "git.git_status", "git.git_add", "git.git_commit"],
        script=SCRIPT,
        prompt="Note the time, look at the repository, and commit the file the trigger names.",
    )
    project.workflow("remote", tools=["remote.*"], script=REMOTE)
    env = {"MCP_REPO": str(repo), "HTTP_TOKEN": TOKEN}
    with AnthropicStandIn() as api:
        daemon = Daemon(project, env={**env, **api.env}, reload=True)
        try:
            yield Setup(project, repo, api, daemon, http)
        finally:
            daemon.close()
            http.kill()


def _calls(record: Any) -> list[dict[str, Any]]:
    return [e.data for e in record.events if e.kind == "tool.call"]


def _results(record: Any) -> list[dict[str, Any]]:
    return [e.data for e in record.events if e.kind == "tool.result"]


@pytest.fixture(scope="module")
def primary(setup: Setup) -> Any:
    """An llm run that commits through mcp-server-git, and the shadow its script ran."""
    (setup.repo / "b.txt").write_text("two\n")
    repo = str(setup.repo)
    setup.api.add(
        Reply.tool_use(
            ("time__get_current_time", {"timezone": "UTC"}),
            ("git__git_status", {"repo_path": repo}),
        ),
        Reply.tool_use(
            ("git__git_add", {"repo_path": repo, "files": ["b.txt"]}),
            ("git__git_commit", {"repo_path": repo, "message": "second"}),
        ),
        Reply.text("Committed b.txt."),
    )
    record = setup.run("commit", {"repo": repo, "file": "b.txt", "message": "second"})
    assert record.status == "succeeded", record.error
    return record


def test_an_mcp_run_is_recorded_and_its_shadow_answers_reads_from_the_recording(
    setup: Setup, primary: Any
) -> None:
    assert setup.commits() == 2
    calls = {c["tool"]: c for c in _calls(primary)}
    assert calls["git.git_add"]["arguments"] == {"repo_path": str(setup.repo), "files": ["b.txt"]}
    assert calls["git.git_status"]["plugin_version"].startswith("mcp-git ")
    assert " tools:" in calls["time.get_current_time"]["plugin_version"]
    results = {r["tool"]: r for r in _results(primary)}
    assert results["time.get_current_time"]["result"]["timezone"] == "UTC"

    def shadow() -> Any:
        found = setup.daemon.client.runs("commit", "", 5, mode="shadow")
        return next((s for s in found if s.plan_diff is not None), None)

    assert eventually(lambda: shadow() is not None), setup.daemon.log
    ran = setup.daemon.client.run(shadow().id)
    assert (ran.coordinator, ran.status, ran.source_run) == ("script", "succeeded", primary.id)
    # Every call, reads and writes, answered from the primary's recording: none made.
    assert {(c["tool"], c["source"], c["executed"]) for c in _calls(ran)} == {
        (tool, "recording", False) for tool in calls
    }
    assert ran.plan_diff["agree"], ran.plan_diff
    assert setup.commits() == 2  # the shadow committed nothing


def test_a_replay_by_the_script_answers_from_the_recording_and_runs_nothing(
    setup: Setup, primary: Any
) -> None:
    before = (setup.commits(), _git(setup.repo, "status", "--porcelain"))
    replayed = tandem(setup.project, "replay", primary.id, "--coordinator", "script", "--json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    report = json.loads(replayed.stdout)
    assert report["agree"] is True
    run = setup.daemon.client.run(report["replay"])
    assert not any(c["executed"] for c in _calls(run))  # git_commit answered, not made
    assert (setup.commits(), _git(setup.repo, "status", "--porcelain")) == before


def test_rewrite_lists_the_mcp_tools_and_ships_fixtures_that_replay(
    setup: Setup, primary: Any, tmp_path: Path
) -> None:
    folder = setup.project.root / "workflows" / "commit"
    brief = tandem(setup.project, "rewrite", "commit", "--brief", str(tmp_path / "brief.md"))
    assert brief.returncode == 0, brief.stderr
    text = (tmp_path / "brief.md").read_text()
    assert "### `git.git_add` (" in text and '"repo_path"' in text
    assert "Called as `tools.git.git_add(repo_path=..., files=...)`" in text
    assert "Called as `tools.time.get_current_time(timezone=...)`" in text
    assert "The tools of an MCP server" in text  # the SDK surface says how they answer

    answer = tmp_path / "script.py"
    answer.write_text(SCRIPT)
    written = tandem(setup.project, "rewrite", "commit", "--model-replies", str(answer), "--write")
    assert written.returncode == 0, written.stdout + written.stderr
    assert "agreed 1 of 1" in written.stdout
    [fixture] = (folder / "tests" / "fixtures").glob("*.json")
    recorded = {c["tool"]: c for c in json.loads(fixture.read_text())["calls"]}
    assert "Untracked files" in recorded["git.git_status"]["result"]  # its text, recorded
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
    )
    assert tests.returncode == 0 and "1 passed" in tests.stdout, tests.stdout


def test_the_ledger_counts_the_mcp_runs_and_their_shadow(setup: Setup, primary: Any) -> None:
    stats = tandem(setup.project, "stats", "commit", "--json")
    assert stats.returncode == 0, stats.stderr
    groups = {g["coordinator"]: g for g in json.loads(stats.stdout)["groups"]}
    llm = groups["llm"]
    assert (llm["runs"], llm["succeeded"], llm["tool_calls"]) == (1, 1, 4)
    assert groups["script"]["shadows"]["runs"] == 1 and groups["script"]["shadows"]["agreed"] == 1


def test_tools_and_status_show_mcp_servers_and_the_operators_annotations(setup: Setup) -> None:
    listed = tandem(setup.project, "tools", "remote", "--json")
    assert listed.returncode == 0, listed.stderr
    tools = {t["name"]: t for t in json.loads(listed.stdout)}
    assert tools["remote.echo"]["input_schema"]["required"] == ["text"]
    assert tools["remote.echo"]["annotations"]["read_only"] is True  # the override
    assert tools["remote.shout"]["annotations"]["read_only"] is False  # MCP's default
    dry = setup.run("remote", dry_run=True)
    assert dry.status == "succeeded", dry.error
    assert {c["tool"]: c["executed"] for c in _calls(dry)} == {
        "remote.echo": True,
        "remote.shout": False,
    }

    health = setup.health()
    assert (health["git"].kind, health["git"].version.split()[0]) == ("mcp", "mcp-git")
    assert "HTTP 401 Unauthorized" in health["wrongkey"].load_error
    assert health["wrongkey"].kind == "mcp" and not health["wrongkey"].up
    status = tandem(setup.project, "status").stdout
    git = next(line for line in status.splitlines() if " git " in line)
    assert git.startswith("mcp ") and "up" in git and "(mcp-git " in git
    assert "wrongkey" in status and "check its url and headers" in status


def test_a_remote_server_that_goes_away_fails_calls_and_is_reconnected(setup: Setup) -> None:
    assert setup.run("remote").output == ANSWERED
    setup.http.restart()  # between calls: the server no longer knows the session
    assert setup.run("remote").output == ANSWERED
    setup.http.kill()
    gone = setup.run("remote").output
    assert "mcp server 'remote' went away during the call" in gone, gone
    setup.http.restart()
    assert eventually(lambda: setup.run("remote").output == ANSWERED)
    assert setup.health()["remote"].restarts >= 2


def test_a_config_change_restarts_that_server_only(setup: Setup) -> None:
    mcp_json = setup.project.root / ".mcp.json"
    tandem_yaml = setup.project.root / "tandem.yaml"
    pids = {name: status.pid for name, status in setup.health().items()}
    edited = json.loads(mcp_json.read_text())
    edited["mcpServers"]["time"]["args"] = ["--local-timezone=Europe/Paris"]
    mcp_json.write_text(json.dumps(edited))
    assert eventually(lambda: setup.health()["time"].pid not in (0, pids["time"]))
    time_pid = setup.health()["time"].pid
    assert setup.health()["git"].pid == pids["git"]

    config = yaml.safe_load(tandem_yaml.read_text())
    original = tandem_yaml.read_text()
    config["mcp_servers"]["git"]["args"] = ["--repository", "${MCP_NOWHERE_SET}"]
    tandem_yaml.write_text(yaml.safe_dump(config))
    assert eventually(lambda: "MCP_NOWHERE_SET" in setup.health()["git"].load_error)
    git = setup.health()["git"]
    assert git.up and git.pid == pids["git"]  # the old one serves on
    status = tandem(setup.project, "status").stdout
    assert "its new config does not load; the server before serves on" in status
    tandem_yaml.write_text(original)  # the edit undone: nothing left to report
    assert eventually(lambda: not setup.health()["git"].load_error)
    assert (setup.health()["git"].pid, setup.health()["time"].pid) == (pids["git"], time_pid)
