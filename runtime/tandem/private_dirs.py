"""Folders outside the state folder that only this user may own: socket folders, the runs'
sandbox folders, the run uids' locks.

A well-known name in a folder everyone may write (`/tmp`) can be made first by another
user, who then swaps what is inside (a `control.sock` of their own) or blocks the daemon.
So these folders go where only this user can create names when there is such a place
(`/run` for root, `$XDG_RUNTIME_DIR` for others), and any folder is used only when it is
a real folder (not a link) owned by this user that nobody else may write.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from tandem_sdk.errors import TandemError


class UntrustedFolder(TandemError):
    """A folder Tandem would use is not a folder of this user's that others cannot write."""


def runtime_root() -> Path:
    """Where this user's private folders go: a folder only they (or root) can write in."""
    candidates = [Path("/run")] if os.geteuid() == 0 else []
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(runtime))
    for folder in candidates:
        if _writable_by_us_only(folder):
            return folder
    return Path(tempfile.gettempdir())


def ensure_private_dir(path: Path, mode: int = 0o700) -> Path:
    """Make `path` (exclusively), or accept it only when it is a real folder owned by this
    user that no one else may write; then give it `mode`."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=mode)
    check_ours(path)
    if stat.S_IMODE(path.lstat().st_mode) != mode:  # a write only when needed
        path.chmod(mode)
    return path


def check_ours(path: Path) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UntrustedFolder(f"{path} is not a folder (a link or a file stands there)")
    if info.st_uid != os.geteuid():
        raise UntrustedFolder(
            f"{path} belongs to uid {info.st_uid}, not to this user ({os.geteuid()}): another"
            " user made it first; remove it, or give a shorter --state path"
        )
    if info.st_mode & 0o022:
        raise UntrustedFolder(f"{path} may be written by others (mode {info.st_mode & 0o777:o})")


def remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _writable_by_us_only(folder: Path) -> bool:
    try:
        info = folder.stat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid in (os.geteuid(), 0)
        and not info.st_mode & 0o022
        and os.access(folder, os.W_OK | os.X_OK)
    )
