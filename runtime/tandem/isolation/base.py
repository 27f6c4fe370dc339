"""The isolation seam. Tiers differ in how they wrap the runner, never in what it sees:
the same socket, token file, result descriptor and environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tandem.workflows.spec import Limits


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


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    pass_fds: tuple[int, ...] = field(default=())


class Isolation(Protocol):
    name: str

    def plan(self, request: LaunchRequest) -> LaunchPlan: ...
