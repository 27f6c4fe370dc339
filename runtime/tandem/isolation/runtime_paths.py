"""What the runner needs to read: the interpreter, its standard library, the venv's
packages and the SDK, and nothing else. The `namespace` tier mounts exactly these,
read-only; the `process` tier needs them readable by the run's unprivileged uid."""

from __future__ import annotations

import functools
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import tandem_sdk


@dataclass(frozen=True)
class RunnerRuntime:
    executable: Path  # as the daemon names it (a venv's bin/python), not resolved
    folders: tuple[Path, ...]  # every folder the runner reads, none inside another


@functools.cache
def runner_runtime() -> RunnerRuntime:
    sdk_root = Path(tandem_sdk.__file__).resolve().parent.parent
    candidates = {
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix).resolve(),
        Path(sys.prefix),  # a venv's own path, which its symlinks and pyvenv.cfg name
        sdk_root,
    }
    folders = sorted(
        (c for c in candidates if not any(c != o and c.is_relative_to(o) for o in candidates)),
        key=str,
    )
    return RunnerRuntime(Path(sys.executable), tuple(folders))


def unreadable_by_others(runtime: RunnerRuntime) -> list[str]:
    """Why an unprivileged uid could not run the runner (empty when it could).

    Only mode bits are checked: the run's uid is in no group and owns nothing here."""
    problems = []
    for folder in runtime.folders:
        for ancestor in reversed(folder.parents):
            if not _mode(ancestor) & stat.S_IXOTH:
                problems.append(
                    f"{ancestor} (mode {stat.S_IMODE(_mode(ancestor)):o}) hides {folder}"
                )
                break
        else:
            problems.extend(_unreadable_inside(folder))
    return problems


def _unreadable_inside(folder: Path, limit: int = 5) -> list[str]:
    problems = []
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            if not _mode(Path(root, name)) & stat.S_IXOTH:
                problems.append(f"{Path(root, name)} is not searchable by other users")
        for name in files:
            path = Path(root, name)
            if path.suffix in (".py", ".so", ".pth") and not _mode(path) & stat.S_IROTH:
                problems.append(f"{path} is not readable by other users")
        if len(problems) >= limit:
            break
    return problems[:limit]


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except OSError:
        return 0
