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


def reachable_runtime_command() -> list[str]:
    """A command prefix that runs a root daemon in a mount namespace of its own in which
    the Python runtime is readable by other users (empty when it already is).

    The process tier runs scripts as an unprivileged uid, so it needs a runtime installed
    where others may read it, as a system or /opt install is. Where Python lives under a
    private folder (a pyenv in /root, mode 0700) the daemon refuses the process tier; the
    tests and benchmarks then use this prefix: a tmpfs of mode 0711 covers each private
    folder, with the runtime bound back inside it. Only root can do this.
    """
    blocking: dict[Path, list[Path]] = {}
    for folder in runner_runtime().folders:
        for ancestor in reversed(folder.parents):
            if not ancestor.stat().st_mode & stat.S_IXOTH:
                blocking.setdefault(ancestor, []).append(folder)
                break
    if not blocking:
        return []
    lines = ["set -e"]
    for n, (private, folders) in enumerate(blocking.items()):
        stash = f"/tmp/.tandem-lab-{os.getpid()}-{n}"
        lines += [f"mkdir -p {stash}", f"mount --bind {private} {stash}"]
        lines += [f"mount -t tmpfs -o mode=0711,size=1m tmpfs {private}"]
        for folder in folders:
            relative = folder.relative_to(private)
            lines += [f"mkdir -p {folder}", f"mount --bind {stash}/{relative} {folder}"]
            for parent in folder.relative_to(private).parents:
                lines.append(f"chmod 0711 {private / parent}")
        lines += [f"umount -l {stash}", f"rmdir {stash}"]
    lines.append('exec "$@"')
    script = "\n".join(lines)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"]
