"""Plugin processes: restarted after a crash, bounded by their call timeout, and given
only the secrets their manifest names."""

from __future__ import annotations

import json
import os
import re
import signal

from conftest import Project, eventually, tandem
from tandem_sdk._pb import control_pb2

FRAGILE = '''
import os, signal, time
from tandem_sdk import tool

@tool(side_effects=False)
def pid() -> int:
    """The plugin process id."""
    return os.getpid()

@tool
def die() -> None:
    """Kill this plugin process in the middle of the call."""
    os.kill(os.getpid(), signal.SIGKILL)

@tool
def hang(seconds: float) -> None:
    """Sleep past the call timeout.

    Args:
        seconds: how long to sleep.
    """
    time.sleep(seconds)

@tool(side_effects=False)
def env() -> dict:
    """The plugin's environment."""
    return dict(os.environ)
'''

SCRIPT = """
from tandem_sdk import errors

def outcome(call):
    try:
        return {"ok": call()}
    except errors.TandemError as error:
        return {"error": type(error).__name__, "message": str(error)}

def handler(trigger, tools, virtual_files, subagent):
    before = tools.fragile.pid()
    killed = outcome(lambda: tools.fragile.die())
    after = outcome(lambda: tools.fragile.pid())
    slow = outcome(lambda: tools.impatient.hang(seconds=30))
    return {"before": before, "killed": killed, "after": after, "slow": slow}
"""


def test_killed_plugin_fails_the_call_and_restarts(project: Project, start_daemon) -> None:
    # A call waits for a restarting plugin within its own timeout: leave room for a slow
    # machine to start a Python process, and test the timeout with a second, impatient plugin.
    project.plugin("fragile", FRAGILE, call_timeout_s=30)
    project.plugin("impatient", FRAGILE, call_timeout_s=1)
    project.workflow("crash", tools=["fragile.*", "impatient.hang"], script=SCRIPT)
    daemon = start_daemon(project)
    record = daemon.run("crash")

    assert record.status == "succeeded", record.error
    out = record.output
    assert out["killed"]["error"] == "ToolUnavailable"
    assert "fragile" in out["killed"]["message"]
    assert "ok" in out["after"], out["after"]
    assert out["after"]["ok"] != out["before"], "the call after the crash reached a new process"
    assert out["slow"]["error"] == "ToolTimeout"
    assert "did not answer within 1s" in out["slow"]["message"]
    # The host is still healthy and the plugin serves the next run.
    assert daemon.run("crash").output["killed"]["error"] == "ToolUnavailable"


def test_plugin_sees_only_its_own_secrets(project: Project, start_daemon) -> None:
    project.plugin("fragile", FRAGILE, secrets=["FRAGILE_TOKEN"])
    project.workflow(
        "env",
        tools=["fragile.env"],
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            return tools.fragile.env()
        """,
    )
    daemon = start_daemon(
        project,
        env={"FRAGILE_TOKEN": "mine", "OTHER_SECRET": "not-yours", "ANTHROPIC_API_KEY": "k"},
    )
    env = daemon.run("env").output
    assert env["FRAGILE_TOKEN"] == "mine"
    assert "OTHER_SECRET" not in env
    assert "ANTHROPIC_API_KEY" not in env
    assert set(env) <= {"PATH", "LANG", "HOME", "TANDEM_PLUGIN_DATA", "FRAGILE_TOKEN", "LC_CTYPE"}


SHORT_LIVED = '''
import os, pathlib, threading
from tandem_sdk import tool

# Every restart dies on its own shortly after it starts: a crash loop no call causes. The
# first process serves the daemon's start and lives until the test kills it, whatever the
# machine's load; a restart that dies before it is described counts as an exit all the same.
starts = pathlib.Path(os.environ["TANDEM_PLUGIN_DATA"]) / "starts"
if starts.exists():
    threading.Timer(0.3, os._exit, args=(7,)).start()
starts.write_text("started")

@tool(side_effects=False)
def ping() -> str:
    """Answer."""
    return "pong"
'''


def test_a_plugin_that_keeps_dying_is_backed_off_and_reported(
    project: Project, start_daemon
) -> None:
    project.plugin("flaky", SHORT_LIVED)
    daemon = start_daemon(project)

    def health() -> control_pb2.PluginStatus:
        reply = daemon.client.stub.Health(control_pb2.HealthRequest())
        return next(p for p in reply.plugins if p.name == "flaky")

    first = health()
    assert first.up and first.pid > 0, first
    os.kill(first.pid, signal.SIGKILL)  # the first exit; each restart then dies by itself
    # Watched through the client in this process: a CLI per poll would cost a Python start.
    assert eventually(lambda: health().crash_loop, within=60)
    plugins = json.loads(tandem(project, "status", "--json").stdout)["plugins"]
    flaky = next(p for p in plugins if p["name"] == "flaky")
    assert flaky["crash_loop"]
    assert flaky["name"] == "flaky" and "exited with status 7" in flaky["last_error"]
    result = tandem(project, "status")
    assert result.returncode == 1 and "crash loop" in result.stdout
    errors = [line for line in daemon.log if " ERROR " in line and "crash loop" in line]
    assert len(errors) == 1, daemon.log
    # Backed off, not a tight loop: each wait doubles.
    waits = [float(m) for m in re.findall(r"restarting in ([0-9.]+)s", "\n".join(daemon.log))]
    assert waits[:5] == [0.1, 0.2, 0.4, 0.8, 1.6], waits
