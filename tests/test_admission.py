"""Admission control and faults: a burst of triggers queues instead of starting every
sandbox at once, queued runs survive the daemon, a SIGKILLed daemon leaves no process
behind, and a full disk is a clear error that loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Daemon, Project, eventually, tandem
from tandem.embedded import EmbeddedHost
from tandem.isolation.rundir import sandbox_base
from tandem.store import RunRecord
from tandem.testing.anthropic_api import AnthropicStandIn
from tandem.testing.github_webhook import deliver
from tandem.testing.replies import Reply

BURST = int(os.environ.get("TANDEM_STRESS_BURST", "20"))
QUICK = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger
"""
SLOW = """
import time

def handler(trigger, tools, virtual_files, subagent):
    tools.slow.pid()
    time.sleep((trigger or {}).get("sleep", 30))
    return "done"
"""
SLOW_PLUGIN = '''
import os
from tandem_sdk import tool

@tool(read_only=True)
def pid() -> int:
    """The plugin process id."""
    return os.getpid()
'''


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _descendants(pid: int) -> set[int]:
    """Every process whose ancestry leads to `pid` (read from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.stress
@pytest.mark.timeout(120 + BURST)
def test_a_burst_queues_and_loses_nothing(project: Project, start_daemon) -> None:
    (project.root / "tandem.yaml").write_text("runs:\n  max_in_flight: 3\n  max_queued: 5000\n")
    project.workflow("quick", script=QUICK, limits={"max_in_flight": 2})
    daemon = start_daemon(project)
    idle = _rss_kib(daemon.process.pid)
    ids = [daemon.client.trigger("quick", {"n": n}, None) for n in range(BURST)]
    peak_children, peak_rss = 0, idle

    def finished() -> bool:
        nonlocal peak_children, peak_rss
        peak_children = max(peak_children, len(_descendants(daemon.process.pid)))
        peak_rss = max(peak_rss, _rss_kib(daemon.process.pid))
        listed = daemon.client.runs("quick", "succeeded", BURST + 10)
        return len(listed) == BURST

    queued = daemon.client.runs("quick", "queued", BURST)
    assert queued, "a burst waits in line"
    assert all(r.queue_position >= 1 for r in queued)
    assert eventually(finished, within=60 + BURST), daemon.log[-20:]
    outputs = sorted(daemon.client.run(i).output["n"] for i in ids)
    assert outputs == list(range(BURST)), "none lost"
    # Bounded: never more than a few sandboxes at once (the plugins are children too).
    assert peak_children <= 2 * 4 + 3 * 4, peak_children
    assert peak_rss - idle < 150 * 1024, f"daemon grew {(peak_rss - idle) // 1024} MiB"
    print(f"\n{BURST} runs: daemon RSS {idle // 1024} -> peak {peak_rss // 1024} MiB")


def test_a_workflow_at_its_limit_lets_others_go_ahead(project: Project, start_daemon) -> None:
    (project.root / "tandem.yaml").write_text("runs:\n  max_in_flight: 2\n")
    project.plugin("slow", SLOW_PLUGIN)
    project.workflow("slow", script=SLOW, tools=["slow.pid"], limits={"max_in_flight": 1})
    project.workflow("quick", script=QUICK)
    daemon = start_daemon(project)
    first, second, third = (daemon.client.trigger("slow", {"sleep": 30}, None) for _ in range(3))
    # One slow run holds its workflow's only slot; the global limit has room for one more,
    # which the younger run of another workflow takes while the older slow ones wait.
    assert daemon.run("quick", {"n": 1}).output == {"n": 1}
    assert daemon.client.run(first).status == "running"
    assert [daemon.client.run(r).queue_position for r in (second, third)] == [1, 2]
    assert daemon.client.cancel(first)
    assert eventually(lambda: daemon.client.run(second).status == "running")
    assert daemon.client.run(third).queue_position == 1
    assert daemon.client.cancel(third) and daemon.client.cancel(second)


def test_a_shadow_waits_behind_the_runs_queued_before_it(project: Project, start_daemon) -> None:
    (project.root / "tandem.yaml").write_text("runs:\n  max_in_flight: 1\n")
    project.plugin("slow", SLOW_PLUGIN)
    project.workflow("slow", script=SLOW, prompt="Say done.", tools=["slow.pid"], shadow="llm")
    project.workflow("quick", script=QUICK)
    with AnthropicStandIn([Reply.text("done")]) as model:
        daemon = start_daemon(project, env=model.env)
        primary = daemon.client.trigger("slow", {"sleep": 1}, None)
        queued = daemon.client.trigger("quick", {"n": 1}, None)
        assert daemon.client.run(queued).queue_position == 1
        for _ in daemon.client.watch(primary):
            pass
        assert daemon.client.run(primary).status == "succeeded"

        def shadow() -> RunRecord | None:
            found = daemon.client.runs("slow", "succeeded", 5, mode="shadow")
            return found[0] if found else None

        assert eventually(lambda: shadow() is not None), daemon.log[-20:]
    first, second = daemon.client.run(queued), shadow()
    assert second is not None and second.source_run == primary
    # The run that waited took the freed slot; the shadow, made as the primary ended,
    # started only once that run was done.
    assert first.finished_at is not None and second.started_at is not None
    assert first.finished_at <= second.started_at, (first, second)


def test_a_run_cancelled_before_its_first_step_frees_its_slot(project: Project) -> None:
    (project.root / "tandem.yaml").write_text("runs:\n  max_in_flight: 1\n")
    project.workflow("quick", script=QUICK)
    with EmbeddedHost(project.config) as embedded:
        runs = embedded.host.runs

        async def trigger_and_cancel_at_once() -> str:
            run_id = runs.trigger("quick", {"n": 1}).id
            assert runs.cancel(run_id)  # in the same loop step: its task never ran
            return run_id

        async def trigger_and_wait() -> RunRecord:
            return await runs.wait(runs.trigger("quick", {"n": 2}).id)

        cancelled = embedded._call(trigger_and_cancel_at_once())
        after = embedded._call(trigger_and_wait())  # the only slot is free again
        assert (after.status, after.output) == ("succeeded", {"n": 2}), after
        assert runs.record(cancelled, events=False).status == "cancelled"
        assert runs.active == 0


def test_the_queue_bound_refuses_clearly(project: Project, start_daemon) -> None:
    (project.root / "tandem.yaml").write_text("runs:\n  max_in_flight: 1\n  max_queued: 1\n")
    project.plugin("slow", SLOW_PLUGIN)
    hook = {"path": "/hooks/x", "verify": "hmac", "secret_env": "X_SECRET"}
    project.workflow(
        "slow", script=SLOW, tools=["slow.pid"], triggers=[{"manual": {}}, {"webhook": hook}]
    )
    daemon = start_daemon(project, "--http", "127.0.0.1:0", env={"X_SECRET": "s"})
    running = daemon.client.trigger("slow", {"sleep": 30}, None)
    waiting = daemon.client.trigger("slow", {"sleep": 30}, None)
    refused = tandem(project, "run", "slow", "--json")
    assert refused.returncode == 2
    assert "runs.max_queued" in json.loads(refused.stdout)["error"]
    url = next(line.split("http listener ")[1] for line in daemon.log if "http listener" in line)
    answer = deliver(url + "/hooks/x", "x", {}, secret=None, headers=_hmac({}, "s"))
    assert answer.status == 429 and answer.body["status"] == "busy"
    listed = tandem(project, "runs", "--status", "queued").stdout
    assert waiting in listed and "[#1 in line]" in listed
    # The running run's folder (made and removed off the event loop) goes with the run.
    folder = sandbox_base(project.config.state_dir / "runs") / running
    assert folder.is_dir()
    for run_id in (waiting, running):
        assert tandem(project, "runs", "cancel", run_id).returncode == 0
    assert daemon.client.run(waiting).status == "cancelled"
    assert eventually(lambda: daemon.client.run(running).status == "cancelled")
    assert eventually(lambda: not folder.exists()), sorted(folder.rglob("*"))


def _hmac(payload: object, secret: str) -> dict[str, str]:
    from tandem.webhooks.verify import sign

    return {"X-Signature-256": sign(secret, json.dumps(payload, indent=2).encode())}


def test_a_sigkilled_daemon_leaves_nothing_and_its_queue_runs_after(
    project: Project,
) -> None:
    (project.root / "tandem.yaml").write_text("runs:\n  max_in_flight: 1\n")
    project.plugin("slow", SLOW_PLUGIN)
    project.workflow("slow", script=SLOW, tools=["slow.pid"])
    project.workflow("quick", script=QUICK)
    daemon = Daemon(project)
    try:
        running = daemon.client.trigger("slow", {"sleep": 60}, None)
        queued = [daemon.client.trigger("quick", {"n": n}, None) for n in range(3)]
        assert eventually(lambda: daemon.client.run(running).status == "running")
        assert eventually(lambda: len(_descendants(daemon.process.pid)) >= 2)
        children = _descendants(daemon.process.pid)
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(10)
        daemon.client.close()

        def gone() -> bool:
            return not any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in children)

        assert eventually(gone, within=10), "plugins and scripts die with the daemon"
    finally:
        daemon.kill()
    again = Daemon(project)
    try:
        assert again.client.run(running).status == "interrupted"
        for run_id in queued:
            for _ in again.client.watch(run_id):
                pass
            assert again.client.run(run_id).status == "succeeded"
        assert any("queued again" in line for line in again.log)
    finally:
        again.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    """A state folder on a 4 MiB tmpfs of its own (the owner's: 0700), to fill at will."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(state)], check=True
    )
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def test_a_full_disk_is_a_clear_error_and_loses_nothing(tmp_path: Path, small_state: Path) -> None:
    state = small_state
    project = Project(tmp_path / "project")
    (project.root / "tandem.yaml").write_text(f"state_dir: {state}\n")
    project.workflow("quick", script=QUICK)
    daemon = Daemon(project)
    try:
        first = tandem(project, "run", "quick", "--payload", '{"n": 1}')
        assert first.returncode == 0, first.stderr
        filler = state / "filler"
        with filler.open("wb") as out:
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        full = tandem(project, "run", "quick", "--json")
        assert full.returncode == 2, full.stdout + full.stderr
        error = json.loads(full.stdout)["error"]
        assert "disk is full" in error and str(state) in error, error
        assert "Traceback" not in full.stderr
        filler.unlink()
        again = tandem(project, "run", "quick", "--payload", '{"n": 2}')
        assert again.returncode == 0, again.stderr
        listed = daemon.client.runs("quick", "succeeded", 10)
        assert sorted(r.output["n"] for r in listed) == [1, 2], "the store is intact"
    finally:
        daemon.close()


def test_a_run_whose_end_meets_a_full_disk_is_never_shown_running(
    tmp_path: Path, small_state: Path
) -> None:
    state = small_state
    project = Project(tmp_path / "project")
    (project.root / "tandem.yaml").write_text(f"state_dir: {state}\n")
    project.plugin("slow", SLOW_PLUGIN)
    project.workflow("slow", script=SLOW, tools=["slow.pid"])
    daemon = Daemon(project)
    try:
        run_id = daemon.client.trigger("slow", {"sleep": 60}, None)
        assert eventually(
            lambda: any(e.kind == "tool.result" for e in daemon.client.run(run_id).events)
        )
        filler = state / "filler"
        with filler.open("wb", buffering=0) as out:
            for chunk in (65536, 4096, 1):  # to the last byte tmpfs gives
                try:
                    while True:
                        out.write(b"\0" * chunk)
                except OSError:
                    pass
        assert daemon.client.cancel(run_id)
        # The store cannot write the end, yet the run no longer shows as running.
        assert eventually(lambda: daemon.client.run(run_id).status == "cancelled")
        assert _stored_status(state, run_id) == "running"
        filler.unlink()
        record = daemon.client.run(run_id)  # the next statement writes it
        assert _stored_status(state, run_id) == "cancelled"
        assert record.events[-1].kind == "run.finished"
    finally:
        daemon.close()


def _stored_status(state: Path, run_id: str) -> str:
    """The run's status as the database file has it, read beside the daemon."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(state / "runs.sqlite3")) as db:
        return str(db.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()[0])
