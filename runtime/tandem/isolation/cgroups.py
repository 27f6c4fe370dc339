"""Run-wide limits: one cgroup per run, so `memory_mb` bounds the run as a whole (all its
processes, the tmpfs pages they write and the kernel memory of their files) rather than
each process on its own, and the run's tasks are counted together.

The daemon makes a group of its own, `tandem-<pid>-<random>`, below the cgroup it was started in,
and one group per run inside that. cgroup v2 is used where its memory and pids
controllers are available (the daemon's cgroup must be allowed to delegate them: the v2
rule of no processes in a group that hands controllers down applies); else the v1
`memory` hierarchy (and `pids`, when mounted). When neither can be written (no cgroup
mounted, not root and nothing delegated), `open()` says why and runs keep the
per-process limits only (RLIMIT_AS, RLIMIT_NPROC): see docs/sandbox.md.

A run's processes join its group before the sandbox is built: the zygote's child writes
its own pid (`ForkSpec.cgroup_procs`); a spawned launcher is prefixed with a one-line
shell step that does the same and then execs it. Nothing of the run runs outside it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tandem.workflows.spec import Limits

from .process import PROCESSES

# The runner's own share: the interpreter, gRPC and the SDK (~40 MiB resident).
RUNNER_MEMORY_MB = 64
# Besides the script's processes and threads: the sandbox's pid 1 and launcher.
SANDBOX_TASKS = 4
_REMOVE_ROUNDS = 200
_REMOVE_PAUSE_S = 0.01


class CgroupUnavailable(Exception):
    pass


def memory_limit_bytes(limits: Limits) -> int:
    return (limits.memory_mb + RUNNER_MEMORY_MB) * 1024 * 1024


@dataclass(frozen=True)
class RunGroup:
    """One run's cgroup: a folder per hierarchy (one in v2; memory and pids in v1)."""

    version: int
    dirs: tuple[Path, ...]
    limit_bytes: int

    @property
    def procs_files(self) -> tuple[str, ...]:
        return tuple(str(d / "cgroup.procs") for d in self.dirs)

    def oom_kills(self) -> int:
        """How many of the run's processes the kernel killed at the memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self.dirs[0] / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def join_command(self) -> list[str]:
        """A prefix for a spawned command line: the shell joins the group, then execs
        the command, which therefore starts inside it."""
        script = (
            'for f in $TANDEM_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; '
            'unset TANDEM_CGROUP_PROCS; exec "$@"'
        )
        return ["/bin/sh", "-c", script, "tandem-cgroup"]

    def join_env(self) -> dict[str, str]:
        return {"TANDEM_CGROUP_PROCS": " ".join(self.procs_files)}


class RunCgroups:
    """The daemon's own group, parent of every run's."""

    def __init__(self, version: int, parents: tuple[Path, ...]) -> None:
        self.version = version
        self.parents = parents

    @classmethod
    def open(cls) -> RunCgroups:
        """Make the daemon's group, or raise CgroupUnavailable saying why not."""
        own = _own_cgroups()
        mounts = _cgroup_mounts()
        # Several hosts may live in one process (embedded ones): each has its own group.
        name = f"tandem-{os.getpid()}-{secrets.token_hex(4)}"
        v2 = mounts.get("cgroup2")
        errors = []
        if v2 is not None and "" in own:
            try:
                return cls(2, (_v2_parent(v2 / own[""].lstrip("/"), name),))
            except (OSError, CgroupUnavailable) as error:
                errors.append(f"cgroup v2: {error}")
        if "memory" in mounts and "memory" in own:
            try:
                controllers = [c for c in ("memory", "pids") if c in mounts and c in own]
                parents = []
                for controller in controllers:
                    base = mounts[controller] / own[controller].lstrip("/")
                    _sweep(base)
                    parents.append(_make(base / name))
                return cls(1, tuple(parents))
            except OSError as error:
                errors.append(f"cgroup v1: {error}")
        elif v2 is None:
            errors.append("no cgroup v2 and no cgroup v1 memory hierarchy is mounted")
        raise CgroupUnavailable("; ".join(errors))

    def describe(self) -> str:
        below = self.parents[0].parent
        if self.version == 2:
            return f"cgroup v2 memory.max and pids.max per run, below {below}"
        kinds = "memory and pids" if len(self.parents) > 1 else "memory (pids not mounted)"
        return f"cgroup v1 {kinds} per run, below {below}"

    def create(self, run_id: str, limits: Limits) -> RunGroup:
        dirs = tuple(_make(parent / run_id) for parent in self.parents)
        group = RunGroup(self.version, dirs, memory_limit_bytes(limits))
        try:
            for folder in dirs:
                for name, value in _limit_files(self.version, folder, group.limit_bytes):
                    path = folder / name
                    if path.exists():
                        path.write_text(value)
        except BaseException:
            remove(group)
            raise
        return group

    def close(self) -> None:
        for parent in self.parents:
            with contextlib.suppress(OSError):
                parent.rmdir()


def _limit_files(version: int, folder: Path, limit: int) -> Iterator[tuple[str, str]]:
    tasks = str(PROCESSES + SANDBOX_TASKS)
    if version == 2:
        yield from (("memory.max", str(limit)), ("memory.swap.max", "0"), ("pids.max", tasks))
    elif (folder / "memory.limit_in_bytes").exists():
        yield "memory.limit_in_bytes", str(limit)
        yield "memory.memsw.limit_in_bytes", str(limit)  # no way around it through swap
    else:
        yield "pids.max", tasks


def remove(group: RunGroup) -> bool:
    """Kill whatever is left in the run's group and remove it; True once it is gone."""
    for _ in range(_REMOVE_ROUNDS):
        left = False
        for folder in group.dirs:
            if not folder.exists():
                continue
            kill = folder / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
            else:
                for pid in _pids(folder):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left = True  # busy: its killed tasks are still being torn down
        if not left:
            return True
        time.sleep(_REMOVE_PAUSE_S)
    return False


def _pids(folder: Path) -> list[int]:
    try:
        return [int(line) for line in (folder / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _sweep(base: Path) -> None:
    """Remove the empty groups of daemons that died without removing theirs. Nothing is
    killed: a pid missing here may be alive in another pid namespace."""
    for folder in base.glob("tandem-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not Path("/proc", pid).exists():
            with contextlib.suppress(OSError):  # busy: something of it still runs
                for run in [p for p in folder.iterdir() if p.is_dir()]:
                    run.rmdir()
                folder.rmdir()


def _make(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    return folder


def _v2_parent(own: Path, name: str) -> Path:
    wanted = {"memory", "pids"}
    available = set((own / "cgroup.controllers").read_text().split())
    if not wanted <= available:
        missing = ", ".join(sorted(wanted - available))
        raise CgroupUnavailable(f"{own} does not offer the {missing} controller(s)")
    enabled = set((own / "cgroup.subtree_control").read_text().split())
    if not wanted <= enabled:
        try:
            (own / "cgroup.subtree_control").write_text("+memory +pids")
        except OSError as error:
            raise CgroupUnavailable(
                f"cannot delegate memory and pids below {own} ({error.strerror}); "
                "processes in a group that delegates controllers are not allowed"
            ) from None
    _sweep(own)
    parent = _make(own / name)
    (parent / "cgroup.subtree_control").write_text("+memory +pids")
    return parent


def _own_cgroups() -> dict[str, str]:
    """Controller (v1) or "" (v2) -> this process's group path."""
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            out[controller] = path
    return out


def _cgroup_mounts() -> dict[str, Path]:
    """ "cgroup2" -> its mount, and each v1 controller -> its hierarchy's mount."""
    out: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        kind, options = fields[separator + 1], fields[separator + 3].split(",")
        mount = Path(fields[4])
        if kind == "cgroup2":
            out.setdefault("cgroup2", mount)
        elif kind == "cgroup":
            for option in options:
                out.setdefault(option, mount)
    return out
