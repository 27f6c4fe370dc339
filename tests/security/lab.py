"""The adversarial lab: a real daemon per test module and tier, the module's attack
workflows, and the checks every attack ends with: nothing of the run left running, and
the daemon still serving a normal run.

Each test module names its workflows in WORKFLOWS ({name: (script, extra yaml fields)})
and its plugins in PLUGINS; the `lab` fixture builds them into one project.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Project
from tandem.isolation.identity import UID_BASE, UID_COUNT
from tandem.isolation.runtime_paths import reachable_runtime_command as runtime_made_reachable
from tandem.store import RunRecord
from tandem.testing.daemon import ServedDaemon

TIERS = ["namespace", "process"]
# Each tier's sandbox is made two ways, forked by the zygote (the default) or spawned
# through setpriv/bubblewrap; a module that pins parity runs under both, as "tier+spawn".
BOTH_LAUNCHES = [*TIERS, *(f"{tier}+spawn" for tier in TIERS)]
CANARY = "canary-" + secrets.token_hex(8)
SECRET_ENV = {"ANTHROPIC_API_KEY": f"sk-ant-{CANARY}", "VAULT_TOKEN": f"vault-{CANARY}"}

UTIL_PLUGIN = '''
from tandem_sdk import tool

@tool(side_effects=False)
def echo(text: str) -> str:
    """Echo text back.

    Args:
        text: what to echo.
    """
    return text
'''
NORMAL_SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return {"echo": tools.util.echo(text="still serving")}
"""


class LabDaemon(Daemon):
    """`tandem serve`, optionally under a command prefix (see `runtime_made_reachable`)."""

    def __init__(self, project: Project, prefix: list[str], *args: str, env: dict[str, str]):
        self.project = project
        ServedDaemon.__init__(self, project.root, "--no-reload", *args, prefix=prefix, env=env)


class Lab:
    def __init__(self, tier: str, launch: str, project: Project, daemon: LabDaemon) -> None:
        self.tier = tier
        self.launch = launch
        self.project = project
        self.daemon = daemon
        self.uids: set[int] = set()  # every uid this lab's runs ran as

    def run(self, workflow: str, payload: Any = None) -> RunRecord:
        record = self.daemon.run(workflow, payload)
        started = [e.data for e in record.events if e.kind == "process.started"]
        self.uids.update(data["uid"] for data in started)
        assert [data["launch"] for data in started] == [self.launch], started
        return record

    def stdout(self, record: RunRecord) -> str:
        return "".join(e.data["text"] for e in record.events if e.kind == "stdout")

    def assert_contained(self) -> None:
        """Nothing of any run is left, and the daemon still serves a normal run."""
        assert self.daemon.process.poll() is None, "the daemon died"
        left = leftovers(self.daemon.pid, self.uids)
        assert left == [], f"{left[:5]}\n" + "\n".join(self.daemon.log[-5:])
        record = self.run("normal")
        assert record.status == "succeeded", record.error
        assert record.output == {"echo": "still serving"}


def leftovers(daemon_pid: int, uids: set[int]) -> list[str]:
    """Live processes of the runs' uids, and the daemon's descendants other than plugins.

    Only this daemon's: other daemons on the machine may be running sandboxes of their own.
    """
    parents: dict[int, int] = {}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["State"].split()[0] in ("Z", "X"):
            continue
        pid, uid = int(entry.name), int(fields["Uid"].split()[0])
        parents[pid] = int(fields["PPid"])
        if uid in uids and UID_BASE <= uid < UID_BASE + UID_COUNT:
            found.append(f"{pid} uid {uid}: {cmdline}")
        elif _long_lived(cmdline, parents[pid], daemon_pid):
            continue
        elif _descends(pid, daemon_pid, parents):
            found.append(f"{pid} (child of the daemon): {cmdline}")
    return found


def _long_lived(cmdline: str, parent: int, daemon_pid: int) -> bool:
    """A plugin, or the daemon's zygote itself (not the runs it forks, which share its
    command line but not its parent)."""
    zygote = "tandem.zygote.server" in cmdline and parent == daemon_pid
    return zygote or "tandem_sdk.plugin_server" in cmdline


def _descends(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ppid = int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
    seen = 0
    while ppid > 1 and seen < 64:
        if ppid == ancestor:
            return True
        try:
            line = next(
                x for x in Path(f"/proc/{ppid}/status").read_text().splitlines() if "PPid" in x
            )
        except (OSError, StopIteration):
            return False
        ppid, seen = int(line.split()[1]), seen + 1
    return False


def build_project(root: Path, module: Any) -> Project:
    project = Project(root)
    project.plugin("util", UTIL_PLUGIN)
    for name, code in getattr(module, "PLUGINS", {}).items():
        project.plugin(name, code, **getattr(module, "PLUGIN_MANIFESTS", {}).get(name, {}))
    project.workflow("normal", script=NORMAL_SCRIPT, tools=["util.*"])
    for name, (script, fields) in module.WORKFLOWS.items():
        project.workflow(name, script=script, **fields)
    if hasattr(module, "prepare"):
        module.prepare(project)
    return project


@pytest.fixture(scope="module", params=TIERS)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tier, _, spawn = str(request.param).partition("+")
    launch = spawn or "zygote"
    only = getattr(request.module, "TIERS_ONLY", None)
    if only is not None and tier not in only:
        pytest.skip(f"these attacks target the {only[0]} tier; docs/sandbox.md covers the rest")
    if tier == "process" and os.geteuid() != 0:
        pytest.skip("the process-tier lab makes the runtime reachable with a mount namespace")
    project = build_project(tmp_path_factory.mktemp(f"lab-{tier}") / "project", request.module)
    if launch == "spawn":
        (project.root / "tandem.yaml").write_text("runs: {zygote: false}\n")
    prefix = runtime_made_reachable() if tier == "process" else []
    daemon = LabDaemon(project, prefix, "--isolation", tier, env=SECRET_ENV)
    assert f"isolation {tier}" in "\n".join(daemon.log)
    try:
        yield Lab(tier, launch, project, daemon)
    finally:
        daemon.close()
