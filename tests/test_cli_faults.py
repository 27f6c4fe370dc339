"""The CLI when things go wrong or are used in pipes: a daemon that goes away mid-run, an
oversized payload, a reader that stops reading, and tool signatures people can read."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from conftest import TANDEM, Project, eventually, tandem

SLOW = """
import time

def handler(trigger, tools, virtual_files, subagent):
    time.sleep(30)
    return "done"
"""
ECHO = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger
"""


def _follow_then_kill_the_daemon(
    project: Project, start_daemon
) -> tuple[subprocess.Popen[str], str]:
    """`tandem run slow --follow` with a SIGKILLed daemon under it, mid-run; the run's id."""
    project.workflow("slow", script=SLOW)
    daemon = start_daemon(project)
    follower = subprocess.Popen(
        [*TANDEM, "--project", str(project.root), "run", "slow", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert eventually(lambda: bool(daemon.client.runs("slow", "running", 5)))
    (run,) = daemon.client.runs("slow", "running", 5)
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait()
    return follower, run.id


def test_losing_the_daemon_mid_run_is_one_line_and_exit_2(project: Project, start_daemon) -> None:
    follower, _ = _follow_then_kill_the_daemon(project, start_daemon)
    started = time.monotonic()
    _, stderr = follower.communicate(timeout=60)
    assert follower.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tandem: lost the tandem daemon"), stderr
    assert "did not come back within 5s" in lines[0]
    assert time.monotonic() - started >= 4, "it waited for the daemon to come back"


def test_follow_goes_on_when_the_daemon_comes_back(project: Project, start_daemon) -> None:
    follower, run_id = _follow_then_kill_the_daemon(project, start_daemon)
    start_daemon(project)  # within the follower's few seconds: it marks the run interrupted
    stdout, stderr = follower.communicate(timeout=60)
    assert follower.returncode == 1, stderr  # the run did not succeed; the CLI did not break
    assert "Traceback" not in stderr and "lost the tandem daemon" not in stderr, stderr
    assert run_id in stdout and "interrupted" in stdout, stdout


def test_an_oversized_payload_says_what_the_limit_is(project: Project, tmp_path) -> None:
    project.workflow("echo", script=ECHO)
    big = tmp_path / "big.json"
    big.write_text('{"blob": "' + "x" * (5 * 1024 * 1024) + '"}')
    result = tandem(project, "run", "echo", "--payload", f"@{big}")
    assert result.returncode == 2
    assert "over the message limit of 4194304 bytes" in result.stderr
    assert "TANDEM_MAX_MESSAGE_BYTES" in result.stderr


def test_a_closed_pipe_ends_quietly(project: Project) -> None:
    project.workflow("echo", script=ECHO, tools=["state.*"])
    command = " ".join([sys.executable, "-m", "tandem.cli", "--project", str(project.root)])
    result = subprocess.run(
        f"set -o pipefail; {command} tools --json | true",  # a reader gone at once
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "BrokenPipeError" not in result.stderr and "Traceback" not in result.stderr


def test_tools_read_as_signatures(project: Project) -> None:
    project.workflow("echo", script=ECHO, tools=["state.*", "slack.get_messages"])
    listed = tandem(project, "tools", "echo").stdout
    assert "slack.get_messages(channel: string, limit: integer = 20)  [read-only]" in listed
    assert "state.get(key: string, default: any = null)  [read-only, closed world]" in listed
