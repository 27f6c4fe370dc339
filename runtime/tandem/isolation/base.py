"""The isolation seam. Tiers differ in how they wrap the runner, never in what it sees:
the same socket, token file, result descriptor and environment variables.

A tier describes its sandbox twice over one set of facts: as a `LaunchPlan` (a command
line that execs the runner through setpriv or bubblewrap) and as a `ForkSpec` (the same
identity, mounts and filters, applied by the zygote in a forked child).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tandem.workflows.spec import Limits

from .identity import RunUser


@dataclass(frozen=True)
class LaunchRequest:
    run_id: str
    workdir: Path  # private, 0700, removed after the run
    toolhost_socket: Path
    token_file: Path
    script_file: Path  # the snapshot of the script taken at load
    script_origin: str  # the script's real path, for tracebacks
    workflow_dir: Path
    result_fd: int
    limits: Limits
    user: RunUser | None = None  # the run's own uid, when the daemon is root
    # The script is the workflow's guards.py and result_fd a socket the host asks them
    # over (tandem.guards): the same runner, sandbox and launch paths as a script.
    guards: bool = False


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    pass_fds: tuple[int, ...] = field(default=())
    owned_fds: tuple[int, ...] = field(default=())  # opened by plan(); closed after the spawn


@dataclass(frozen=True)
class MountOp:
    """One step of building a sandbox's file system, in order. `kind` is one of:
    ro-bind (source -> path), symlink (source is the link's target), dir, tmpfs (size,
    inodes, perms), proc, dev (a minimal /dev: null, zero, full, random, urandom, tty, pts, shm)."""

    kind: str
    path: str
    source: str = ""
    size: int = 0
    perms: int = 0o755
    inodes: int = 0  # a tmpfs's files and folders at most; 0: the kernel's default


@dataclass(frozen=True)
class ForkSpec:
    env: dict[str, str]
    cwd: str
    user: tuple[int, int] | None  # (uid, gid) to switch to, when the daemon is root
    # None: the host's own namespaces (the `process` tier); else the new root's mounts.
    mounts: tuple[MountOp, ...] | None = None
    hostname: str = ""
    seccomp: bool = False
    # The run's cgroup.procs files, joined by the child before it builds anything.
    cgroup_procs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "env": self.env,
            "cwd": self.cwd,
            "user": list(self.user) if self.user else None,
            "mounts": None if self.mounts is None else [vars(op) for op in self.mounts],
            "hostname": self.hostname,
            "seccomp": self.seccomp,
            "cgroup_procs": list(self.cgroup_procs),
        }


class Isolation(Protocol):
    name: str

    def plan(self, request: LaunchRequest) -> LaunchPlan: ...

    def fork_spec(self, request: LaunchRequest) -> ForkSpec | None:
        """The sandbox as the zygote applies it, or None where only a spawn can make it."""
        ...
