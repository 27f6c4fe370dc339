"""The `tandem` command line as a user drives it, with and without a daemon."""

from __future__ import annotations

import json
import os
import traceback

import pytest
from conftest import Project, eventually, tandem

OK = """
def handler(trigger, tools, virtual_files, subagent):
    count = tools.state.increment(key="n")
    return {"hello": (trigger or {}).get("name", "world"), "n": count}
"""
FAILS = "def handler(trigger, tools, virtual_files, subagent):\n    raise RuntimeError('no')\n"


@pytest.fixture
def cli_project(project: Project) -> Project:
    project.workflow("greet", tools=["state.*"], script=OK, description="Say hello")
    project.workflow("fails", script=FAILS)
    return project


def test_run_without_daemon_uses_an_embedded_host(cli_project: Project, tmp_path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"name": "ada"}')
    result = tandem(cli_project, "run", "greet", "--payload", f"@{payload}", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "succeeded"
    assert record["output"] == {"hello": "ada", "n": 1}
    assert record["coordinator"] == "script"
    assert {"id", "workflow", "usage", "events", "error"} <= set(record)
    assert record["usage"]["model_calls"] == 0
    assert [e["kind"] for e in record["events"]][-1] == "run.finished"

    failed = tandem(cli_project, "run", "fails")
    assert failed.returncode == 1
    assert "failed" in failed.stdout and "RuntimeError: no" in failed.stdout

    shown = tandem(cli_project, "runs", "show", record["id"])
    assert shown.returncode == 0
    assert "state.increment" in shown.stdout and "succeeded" in shown.stdout
    listed = tandem(cli_project, "runs", "--workflow", "greet", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [record["id"]]


def test_run_through_the_daemon(cli_project: Project, start_daemon) -> None:
    daemon = start_daemon(cli_project)
    result = tandem(cli_project, "run", "greet", "--payload", '{"name": "bob"}', "--follow")
    assert result.returncode == 0, result.stderr
    assert "tool.call" in result.stdout and "state.increment" in result.stdout
    assert '"hello": "bob"' in result.stdout
    # It went through the daemon: the daemon's store has it.
    runs = daemon.client.runs("greet", "", 10)
    assert len(runs) == 1 and runs[0].output == {"hello": "bob", "n": 1}


USAGE_ERRORS = [
    (["run", "greet", "--payload", "{nope"], "--payload is not valid JSON"),
    (["run", "greet", "--payload", "@/nonexistent/file.json"], "cannot read"),
    (["run", "nobody"], "no workflow named 'nobody'"),
    (["runs", "show", "no-such-run"], "no run 'no-such-run'"),
    (["tools", "nobody"], "no workflow named 'nobody'"),
]


def test_usage_errors_exit_2(cli_project: Project, start_daemon) -> None:
    start_daemon(cli_project)  # one daemon answers every case faster than embedded hosts
    for args, message in USAGE_ERRORS:
        result = tandem(cli_project, *args)
        assert result.returncode == 2, (args, result)
        assert message in result.stderr, (args, result.stderr)


def test_workflows_and_tools_listings(cli_project: Project) -> None:
    listed = tandem(cli_project, "workflows")
    assert listed.returncode == 0
    assert "greet" in listed.stdout and "Say hello" in listed.stdout
    tools = json.loads(tandem(cli_project, "tools", "greet", "--json").stdout)
    names = {t["name"] for t in tools}
    assert {"state.get", "state.set", "state.increment"} <= names
    get = next(t for t in tools if t["name"] == "state.get")
    assert get["side_effects"] is False
    assert get["input_schema"]["required"] == ["key"]
    assert tandem(cli_project, "tools", "fails", "--json").stdout.strip() == "[]"


def test_every_command_has_help(cli_project: Project) -> None:
    for command in ["serve", "run", "workflows", "tools", "runs", "check"]:
        result = tandem(cli_project, command, "--help")
        assert result.returncode == 0 and "usage: tandem" in result.stdout, command


def test_tandem_yaml_sets_the_folders(project: Project) -> None:
    (project.root / "flows").mkdir(parents=True)
    (project.root / "tandem.yaml").write_text("workflows_dir: flows\nstate_dir: var/state\n")
    flow = project.root / "flows" / "x"
    flow.mkdir()
    (flow / "workflow.yaml").write_text("coordinator: script\ncoordinator_script: s.py\n")
    (flow / "s.py").write_text(
        "def handler(trigger, tools, virtual_files, subagent):\n    return 7\n"
    )
    result = tandem(project, "run", "x", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == 7
    assert (project.root / "var" / "state" / "runs.sqlite3").is_file()

    (project.root / "tandem.yaml").write_text("workflow_dir: flows\n")
    bad = tandem(project, "workflows")
    assert bad.returncode == 2 and "unknown setting(s) ['workflow_dir']" in bad.stderr


def test_daemon_hot_reloads_workflows(cli_project: Project, start_daemon) -> None:
    daemon = start_daemon(cli_project, reload=True)
    script = cli_project.root / "workflows" / "greet" / "script.py"
    script.write_text(OK.replace('"hello"', '"reloaded"'))
    assert eventually(lambda: "reloaded" in daemon.run("greet").output), daemon.log

    script.write_text("def handler(:\n")

    def broken() -> str:
        listed = json.loads(tandem(cli_project, "workflows", "--json").stdout)
        return next(w["error"] for w in listed["workflows"] if w["name"] == "greet") or ""

    assert eventually(lambda: "syntax error" in broken()), daemon.log
    assert "reloaded" in daemon.run("greet").output, "the last good version keeps serving"


def test_schedule_trigger_fires_runs(project: Project, start_daemon) -> None:
    project.workflow(
        "ticker",
        triggers=[{"schedule": "* * * * * *"}],  # every second (sixth field: seconds)
        script="def handler(trigger, tools, virtual_files, subagent):\n    return trigger\n",
    )
    daemon = start_daemon(project)
    assert eventually(lambda: len(daemon.client.runs("ticker", "succeeded", 10)) >= 2)
    payload = daemon.client.runs("ticker", "succeeded", 1)[0].output
    assert payload["trigger"] == "schedule" and payload["schedule"] == "* * * * * *"


def test_version_names_the_package(cli_project: Project) -> None:
    import importlib.metadata

    result = tandem(cli_project, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"tandem {importlib.metadata.version('tandem')}\n"


WAITS = """
import threading

def handler(trigger, tools, virtual_files, subagent):
    tools.state.increment(key="started")
    threading.Event().wait()  # until the run is cancelled (or its time limit)
"""


def test_ctrl_c_on_a_followed_run_cancels_it_and_says_so(project: Project, start_daemon) -> None:
    import selectors
    import signal
    import subprocess
    import time

    from tandem.testing.daemon import TANDEM

    project.workflow("waits", script=WAITS, tools=["state.*"], limits={"timeout_s": 60})
    daemon = start_daemon(project)
    process = subprocess.Popen(
        [*TANDEM, "--project", str(project.root), "run", "waits", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The trace shows the run's tool call: the run is under way when Ctrl-C comes.
        seen, deadline = "", time.monotonic() + 30
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while "state.increment" not in seen and time.monotonic() < deadline:
                if selector.select(deadline - time.monotonic()):
                    line = process.stdout.readline()
                    if not line:
                        break
                    seen += line
        assert "state.increment" in seen, seen
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    [run] = daemon.client.runs("waits", "", 10)
    assert process.returncode == 130, err
    assert f"run {run.id} cancelled\n" in err
    assert eventually(lambda: daemon.client.run(run.id).status == "cancelled")


def test_ctrl_c_while_a_follow_waits_in_grpc_is_raised_outside_grpc(
    project: Project, start_daemon
) -> None:
    # Raised inside grpc's lock wait, KeyboardInterrupt can leave the lock half released
    # (RuntimeError, a traceback, exit 1): Ctrl-C comes while the follow waits there.
    import signal
    import sys
    import threading

    from tandem.cli.follow import follow

    project.workflow("waits", script=WAITS, tools=["state.*"], limits={"timeout_s": 60})
    daemon = start_daemon(project)
    run_id = daemon.client.trigger("waits", {}, None)
    main = threading.main_thread().ident
    assert threading.get_ident() == main, "signals reach the main thread only"

    def waiting_in_grpc() -> bool:
        frame = sys._current_frames().get(main or 0)
        stack = traceback.extract_stack(frame) if frame else []
        return bool(stack) and stack[-1].name == "wait" and _in_grpc(stack)

    def interrupt() -> None:
        if eventually(waiting_in_grpc):
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            follow(daemon.client, run_id, lambda _: None)
    finally:
        sender.join()
        daemon.client.cancel(run_id)
    assert not _in_grpc(traceback.extract_tb(raised.tb))


def _in_grpc(stack: traceback.StackSummary) -> bool:
    return any(f"{os.sep}grpc{os.sep}" in frame.filename for frame in stack)


def test_a_run_through_the_daemon_warns_of_variables_its_plugins_see_otherwise(
    project: Project, start_daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    project.workflow("reads_slack", script=OK, tools=["state.*", "slack.get_messages"])
    for name in ("SLACK_BOT_TOKEN", "SLACK_API_URL", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    theirs = {"SLACK_API_URL": "http://127.0.0.1:9/daemons/"}  # and no token
    daemon = start_daemon(project, env=theirs)
    token, url = "xoxb-shell-only-secret", "http://127.0.0.1:9/mine/"
    mine = {"SLACK_BOT_TOKEN": token, "SLACK_API_URL": url, "GITHUB_TOKEN": "gh"}
    ran = tandem(project, "run", "reads_slack", env={**os.environ, **mine})
    assert ran.returncode == 0, ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "tandem: warning: SLACK_API_URL in this shell differs from the value the daemon's"
        " plugin slack gets: the run goes through the daemon, which uses its own",
        "tandem: warning: SLACK_BOT_TOKEN is set in this shell, but the daemon's plugin slack"
        " does not get it: the run goes through the daemon, whose environment lacks it",
    ]  # and none for GITHUB_TOKEN: no github tool is in the workflow's scope
    assert token not in ran.stderr + ran.stdout and url not in ran.stderr + ran.stdout
    same = tandem(project, "run", "reads_slack", env={**os.environ, **theirs})
    assert same.returncode == 0 and "warning" not in same.stderr, same.stderr
    assert len(daemon.client.runs("reads_slack", "", 10)) == 2
