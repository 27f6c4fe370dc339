"""The zygote: a daemon forks script runs from it, survives its loss by spawning until it
is back, and takes it along when the daemon dies, whatever kills it.

The sandbox a forked run gets is pinned by the security lab (tests/security), which runs
every confinement attack against both launch paths."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from conftest import Daemon, Project, eventually, tandem
from tandem.config import load_config
from tandem.zygote import sandbox
from tandem_sdk.errors import DefinitionError

SLEEPY = """
import time
def handler(trigger, tools, virtual_files, subagent):
    time.sleep(600)
"""
QUICK = "def handler(trigger, tools, virtual_files, subagent):\n    return 'done'\n"


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _alive(pid: int) -> bool:
    try:
        return _status(pid)["State"][0] not in "ZX"
    except (OSError, KeyError):
        return False


def _zygote_of(daemon: Daemon) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parent = int(_status(int(entry.name))["PPid"])
        except (OSError, KeyError, ValueError):
            continue
        if b"tandem.zygote.server" in cmdline and parent == daemon.process.pid:
            return int(entry.name)
    raise AssertionError("the daemon has no zygote")


def _launch(record) -> str:  # type: ignore[no-untyped-def]
    return str(next(e.data["launch"] for e in record.events if e.kind == "process.started"))


def _started(daemon: Daemon, run_id: str) -> int:
    for event in daemon.client.watch(run_id):
        if event.kind == "process.started":
            return int(event.data["pid"])
    raise AssertionError("the run ended before its process started")


@pytest.fixture
def workflows(project: Project) -> Project:
    project.workflow("sleepy", script=SLEEPY)
    project.workflow("quick", script=QUICK)
    return project


def test_a_daemon_forks_runs_from_its_zygote(workflows: Project, start_daemon) -> None:
    daemon = start_daemon(workflows)
    zygote = _zygote_of(daemon)
    status = json.loads(tandem(workflows, "status", "--json").stdout)
    assert status["zygote"] == {"pid": zygote, "tiers": ["process", "namespace"]}
    run_id = daemon.client.trigger("sleepy", None, None)
    pid = _started(daemon, run_id)
    assert int(_status(pid)["PPid"]) == zygote
    assert eventually(lambda: _status(pid)["Name"] == "tandem-run", within=5)
    daemon.client.cancel(run_id)
    record = daemon.run("quick")
    assert record.status == "succeeded" and record.output == "done"
    assert _launch(record) == "zygote"
    assert eventually(lambda: not _alive(pid), within=10)


def test_a_killed_zygote_is_replaced_and_no_run_hangs(workflows: Project, start_daemon) -> None:
    daemon = start_daemon(workflows)
    zygote = _zygote_of(daemon)
    run_id = daemon.client.trigger("sleepy", None, None)
    pid = _started(daemon, run_id)
    os.kill(zygote, signal.SIGKILL)
    # The run in flight dies with the zygote and fails at once, not at its timeout.
    for _ in daemon.client.watch(run_id):
        pass
    record = daemon.client.run(run_id)
    assert record.status == "failed"
    assert "before reporting a result" in (record.error or "")
    assert eventually(lambda: not _alive(pid), within=10)
    # Runs go on meanwhile (spawned), and the zygote comes back.
    assert daemon.run("quick").status == "succeeded"
    assert eventually(lambda: _launch(daemon.run("quick")) == "zygote", within=20)
    assert _zygote_of(daemon) != zygote
    assert any("the zygote exited" in line for line in daemon.log)


def test_a_sigkilled_daemon_takes_its_zygote_and_runs_along(
    workflows: Project, start_daemon
) -> None:
    daemon = start_daemon(workflows)
    zygote = _zygote_of(daemon)
    pid = _started(daemon, daemon.client.trigger("sleepy", None, None))
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(10)
    assert eventually(lambda: not _alive(zygote) and not _alive(pid), within=10)


def test_the_zygote_can_be_turned_off(workflows: Project, start_daemon) -> None:
    (workflows.root / "tandem.yaml").write_text("runs: {zygote: false}\n")
    daemon = start_daemon(workflows)
    record = daemon.run("quick")
    assert record.status == "succeeded"
    assert _launch(record) == "spawn"
    assert "zygote: none; script runs are spawned" in tandem(workflows, "status").stdout


def test_a_zygote_setting_must_be_true_or_false(tmp_path: Path) -> None:
    (tmp_path / "tandem.yaml").write_text("runs: {zygote: sometimes}\n")
    with pytest.raises(DefinitionError, match=r"runs\.zygote: expected true or false"):
        load_config(tmp_path)


def test_a_folder_step_leaves_an_existing_folder_as_it_is(tmp_path: Path) -> None:
    # A checkout under /tmp makes /tmp a parent of the runtime, after its tmpfs (1777).
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp").chmod(0o1777)
    for path in ("/tmp", "/tmp/checkout"):
        sandbox._apply({"kind": "dir", "path": path, "source": "", "perms": 0o755}, str(tmp_path))
    assert (tmp_path / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (tmp_path / "tmp" / "checkout").stat().st_mode & 0o7777 == 0o755
