"""Choosing the tier: the probe, refusing to start without the asked-for isolation,
falling back only when configured to, and workflows that may only ask for stricter."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TANDEM, Project, tandem
from lab import LabDaemon, build_project, runtime_made_reachable
from tandem.isolation.runtime_paths import runner_runtime, unreadable_by_others

WORKFLOWS = {
    "default": ("def handler(trigger, tools, virtual_files, subagent):\n    return 1\n", {}),
    "strict": (
        "def handler(trigger, tools, virtual_files, subagent):\n    return 2\n",
        {"isolation": "namespace"},
    ),
    "lenient": (
        "def handler(trigger, tools, virtual_files, subagent):\n    return 3\n",
        {"isolation": "process"},
    ),
}
_SELF = __import__(__name__)


def _tier_of(record: object) -> str:
    events = record.events  # type: ignore[attr-defined]
    return next(e.data["isolation"] for e in events if e.kind == "process.started")


def _path_without_bwrap(folder: Path) -> dict[str, str]:
    """A PATH holding the tools the daemon and the lab use, but not bubblewrap."""
    folder.mkdir()
    for name in ("setpriv", "unshare", "sh", "mount", "umount", "mkdir", "chmod", "rmdir"):
        found = shutil.which(name)
        assert found, name
        (folder / name).symlink_to(found)
    return {"PATH": str(folder)}


def test_check_sandbox_reports_each_tier(project: Project) -> None:
    result = tandem(project, "check", "--sandbox")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("namespace  available") for line in lines), result.stdout
    assert any(line.startswith("process") for line in lines)
    # What holds memory_mb here, said either way: for the whole run, or per process.
    limits = next(line for line in lines if line.startswith("run limits: "))
    whole = "memory_mb holds for each run as a whole: cgroup v"
    assert whole in limits or "memory_mb holds per process only" in limits, limits
    assert "this project uses isolation 'namespace'" in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch happens only for a root daemon")
def test_root_daemon_refuses_a_process_tier_it_cannot_run_unprivileged(
    project: Project,
) -> None:
    problems = unreadable_by_others(runner_runtime())
    if not problems:
        pytest.skip("the Python runtime here is readable by other users")
    project.workflow("default", script=WORKFLOWS["default"][0])
    result = subprocess.run(
        [*TANDEM, "--project", str(project.root), "serve", "--isolation", "process"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "isolation 'process' is unavailable" in result.stderr
    assert "cannot read the Python runtime" in result.stderr


def test_workflows_may_only_ask_for_stricter(tmp_path: Path) -> None:
    project = build_project(tmp_path / "project", _SELF)
    daemon = LabDaemon(project, runtime_made_reachable(), "--isolation", "process", env={})
    try:
        assert _tier_of(daemon.run("default")) == "process"
        assert _tier_of(daemon.run("strict")) == "namespace"
        assert _tier_of(daemon.run("lenient")) == "process"
    finally:
        daemon.close()
    daemon = LabDaemon(project, [], "--isolation", "namespace", env={})
    try:
        record = daemon.run("lenient")
        assert record.status == "succeeded" and _tier_of(record) == "namespace"
    finally:
        daemon.close()


def test_without_bubblewrap_the_daemon_refuses_unless_allowed_to_fall_back(
    tmp_path: Path,
) -> None:
    project = build_project(tmp_path / "project", _SELF)
    env = _path_without_bwrap(tmp_path / "bin")
    refused = subprocess.run(
        [*TANDEM, "--project", str(project.root), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert refused.returncode == 2
    assert "isolation 'namespace' is unavailable" in refused.stderr
    assert "bubblewrap (bwrap) is not installed" in refused.stderr
    assert "isolation_fallback" in refused.stderr

    daemon = LabDaemon(project, runtime_made_reachable(), "--isolation-fallback", env=env)
    try:
        log = "\n".join(daemon.log)
        assert "falling back to 'process'" in log and "isolation process" in log
        record = daemon.run("default")
        assert record.status == "succeeded" and _tier_of(record) == "process"
        strict = daemon.run("strict")
        assert strict.status == "failed"
        assert "requires isolation 'namespace'" in (strict.error or "")
    finally:
        daemon.close()


def test_denials_are_errno_values_the_script_can_handle() -> None:
    # The names test_confinement's assertions use are real errno names on this platform.
    for name in ("EPERM", "EACCES", "EROFS", "ENXIO", "ENOTTY", "ENOSYS", "ECONNREFUSED"):
        assert hasattr(errno, name)
