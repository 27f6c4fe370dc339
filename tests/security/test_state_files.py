"""What the daemon keeps on disk is its owner's alone, and the folders it keeps outside
the state folder cannot be planted by another user: not the socket folder (where a
`control.sock` of theirs would talk to root's CLI), not the runs' folder, not the uid
locks. A daemon that holds the state folder but does not answer is never doubled by a
host the CLI starts beside it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import TANDEM, Daemon, Project, tandem
from tandem.config import load_config
from tandem.isolation.rundir import _usual_base
from tandem.store import RunStore

ECHO = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger
"""
OTHER_UID = 4242
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="another user's folder needs chown")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _long_state(tmp_path: Path) -> Path:
    """A state path too long for a unix socket under it: sockets go to the runtime folder."""
    return tmp_path / ("s" * 90) / "state"


def test_the_store_and_what_it_exports_are_the_owners_alone(
    project: Project, tmp_path: Path
) -> None:
    state = project.root / ".tandem"
    state.mkdir(mode=0o755)  # as an older version left it
    project.workflow("echo", script=ECHO)
    ran = tandem(project, "run", "echo", "--payload", '{"secret": 1}', "--json")
    assert ran.returncode == 0, ran.stderr
    assert _mode(state) == 0o700
    database = state / "runs.sqlite3"
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists():
            assert _mode(path) == 0o600, path
    exported = tandem(project, "runs", "export", json.loads(ran.stdout)["id"], str(tmp_path))
    assert exported.returncode == 0, exported.stderr
    (fixture,) = tmp_path.glob("echo-*.json")
    assert _mode(fixture) == 0o600


def test_a_state_folder_others_may_write_is_refused(project: Project) -> None:
    state = project.root / ".tandem"
    state.mkdir()
    state.chmod(0o777)
    project.workflow("echo", script=ECHO)
    served = subprocess.run(
        [*TANDEM, "--project", str(project.root), "serve", "--no-reload"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode != 0
    assert "may be written by others" in served.stderr
    assert not (state / "runs.sqlite3").exists()


@needs_root
def test_a_socket_folder_another_user_made_is_never_used(tmp_path: Path) -> None:
    project = Project(tmp_path / "project")
    state = _long_state(tmp_path)
    (project.root / "tandem.yaml").write_text(f"state_dir: {state}\n")
    project.workflow("echo", script=ECHO)
    planted = load_config(project.root).socket_dir
    assert not str(planted).startswith(str(state))
    planted.mkdir(mode=0o755)
    os.chown(planted, OTHER_UID, OTHER_UID)
    try:
        status = tandem(project, "status")
        assert status.returncode == 2
        assert f"belongs to uid {OTHER_UID}" in status.stderr
    finally:
        planted.rmdir()


@needs_root
def test_a_runs_folder_another_user_made_does_not_stop_the_daemon(tmp_path: Path) -> None:
    project = Project(tmp_path / "project")
    project.workflow("echo", script=ECHO)
    planted = _usual_base(project.config.state_dir / "runs")
    planted.mkdir(mode=0o755)
    os.chown(planted, OTHER_UID, OTHER_UID)
    try:
        daemon = Daemon(project)
        try:
            assert daemon.run("echo", {"n": 1}).status == "succeeded"
        finally:
            daemon.close()
        assert any("belongs to uid" in line for line in daemon.log)
        assert list(planted.iterdir()) == []
    finally:
        planted.rmdir()


def test_the_folders_outside_the_state_folder_go_when_the_daemon_stops(tmp_path: Path) -> None:
    project = Project(tmp_path / "project")
    (project.root / "tandem.yaml").write_text(f"state_dir: {_long_state(tmp_path)}\n")
    project.workflow("echo", script=ECHO)
    config = load_config(project.root)
    daemon = Daemon(project)
    try:
        assert daemon.run("echo", {"n": 1}).status == "succeeded"
        assert config.socket_dir.is_dir()
    finally:
        daemon.close()
    assert not config.socket_dir.exists()
    assert not _usual_base(config.state_dir / "runs").exists()


def test_a_daemon_that_does_not_answer_is_not_doubled(project: Project) -> None:
    project.workflow("echo", script=ECHO)
    daemon = Daemon(project)
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        status = tandem(project, "status")
        assert status.returncode == 2, status.stdout
        assert "not answering" in status.stderr
        ran = tandem(project, "run", "echo")
        assert ran.returncode == 2 and "not answering" in ran.stderr
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
        daemon.close()
    store = RunStore(project.config.database)
    try:
        assert store.list() == []  # nothing ran beside the daemon
    finally:
        store.close()
