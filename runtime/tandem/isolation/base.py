"""The isolation seam. Tiers differ in how they wrap the runner, never in what it sees:
the same socket, token file, result descriptor and environment variables."""

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


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    pass_fds: tuple[int, ...] = field(default=())
    owned_fds: tuple[int, ...] = field(default=())  # opened by plan(); closed after the spawn


class Isolation(Protocol):
    name: str

    def plan(self, request: LaunchRequest) -> LaunchPlan: ...
