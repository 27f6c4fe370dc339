"""The script process: timeouts kill its whole group, output is capped, failures keep their
traceback, and daemon shutdowns and crashes leave nothing running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Project, eventually
from tandem.store import RunStore


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone(pgid: int, within: float = 10.0) -> bool:
    """SIGKILL is delivered at once but reaping is asynchronous: wait for it, bounded."""
    deadline = time.monotonic() + within
    while _group_exists(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _started_pid(record) -> int:
    return next(e.data["pid"] for e in record.events if e.kind == "process.started")


def _wait_for_start(daemon, run_id: str) -> int:
    for event in daemon.client.watch(run_id):
        if event.kind == "process.started":
            return int(event.data["pid"])
    raise AssertionError("the run ended before its process started")


def test_busy_loop_times_out_and_its_group_is_gone(project: Project, start_daemon) -> None:
    project.workflow(
        "spin",
        limits={"timeout_s": 1},
        script="""
        import subprocess, sys
        def handler(trigger, tools, virtual_files, subagent):
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            while True:
                pass
        """,
    )
    daemon = start_daemon(project)
    record = daemon.run("spin")
    assert record.status == "timed_out"
    assert "timeout of 1s" in record.error
    assert _gone(_started_pid(record))
    assert daemon.run("spin").status == "timed_out", "the daemon still serves runs"


def test_huge_output_is_capped_and_daemon_memory_stays_flat(project: Project, start_daemon) -> None:
    project.workflow(
        "loud",
        script="""
        import sys
        def handler(trigger, tools, virtual_files, subagent):
            block = "x" * (1024 * 1024)
            for _ in range(100):
                sys.stdout.write(block)
            sys.stdout.flush()
            return "done"
        """,
    )
    daemon = start_daemon(project)
    daemon.run("loud")  # warm up: first-run allocations are not what this measures
    before = _peak_rss_kib(daemon.process.pid)
    record = daemon.run("loud")
    after = _peak_rss_kib(daemon.process.pid)

    assert record.status == "succeeded" and record.output == "done"
    kept = sum(len(e.data["text"]) for e in record.events if e.kind == "stdout")
    assert 0 < kept <= 256 * 1024
    truncated = next(e.data for e in record.events if e.kind == "output.truncated")
    assert truncated["stream"] == "stdout"
    assert truncated["dropped_bytes"] + truncated["kept_bytes"] == 100 * 1024 * 1024
    assert after - before < 32 * 1024, f"daemon peak RSS grew by {after - before} KiB"


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_exception_fails_the_run_with_its_traceback(project: Project, start_daemon) -> None:
    project.workflow(
        "broken",
        script="""
        def helper(value):
            return value["missing"]

        def handler(trigger, tools, virtual_files, subagent):
            return helper({})
        """,
    )
    record = start_daemon(project).run("broken")
    assert record.status == "failed"
    assert record.error == "KeyError: 'missing'"
    details = record.events[-1].data["details"]
    assert "Traceback" in details and "in helper" in details and "script.py" in details


def test_output_that_is_not_json_fails_clearly(project: Project, start_daemon) -> None:
    project.workflow(
        "odd",
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            return {1, 2}
        """,
    )
    record = start_daemon(project).run("odd")
    assert record.status == "failed"
    assert "not JSON-serialisable" in record.error


def test_sigterm_cancels_runs_in_flight_and_leaves_no_child(project: Project, start_daemon) -> None:
    project.workflow(
        "sleepy",
        script="""
        import time
        def handler(trigger, tools, virtual_files, subagent):
            time.sleep(600)
        """,
    )
    daemon = start_daemon(project, "--grace", "0.5")
    run_id = daemon.client.trigger("sleepy", None, None)
    pid = _wait_for_start(daemon, run_id)
    assert daemon.terminate() == 0
    # The operator's log names the runs the grace period waits for.
    waited = f"waiting up to 0.5s for 1 run(s): {run_id} (sleepy)"
    assert eventually(lambda: any(waited in line for line in daemon.log)), daemon.log
    store = RunStore(project.config.database)
    record = store.get(run_id)
    assert record is not None and record.status == "cancelled"
    assert _gone(pid)
    assert not project.config.control_socket.exists()


def test_sigkilled_daemon_leaves_the_run_interrupted(project: Project, start_daemon) -> None:
    project.workflow(
        "sleepy",
        script="""
        import time
        def handler(trigger, tools, virtual_files, subagent):
            time.sleep(600)
        """,
    )
    daemon = start_daemon(project)
    run_id = daemon.client.trigger("sleepy", None, None)
    pid = _wait_for_start(daemon, run_id)
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(10)

    restarted = start_daemon(project)
    record = restarted.client.run(run_id)
    assert record.status == "interrupted"
    assert "host stopped" in (record.error or "")
    assert _gone(pid)


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_runs_filter_by_status(project: Project, start_daemon, status: str) -> None:
    project.workflow("ok", script="def handler(t, tools, v, s):\n    return 1\n")
    project.workflow("bad", script="def handler(t, tools, v, s):\n    raise ValueError('x')\n")
    daemon = start_daemon(project)
    daemon.run("ok")
    daemon.run("bad")
    runs = daemon.client.runs("", status, 10)
    assert len(runs) == 1 and runs[0].status == status
