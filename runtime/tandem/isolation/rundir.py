"""The host side of one run: a folder holding its token, its script snapshot, its own
ToolHost socket and (for the `process` tier) its working directory.

The folders live under a base of the daemon's own in its runtime folder (`/run` for root;
see tandem.private_dirs), mode 0711, because a run's
uid must reach its own folder while the state folder may sit somewhere private. Each
run's folder is root:<run gid> 0710: the run may enter it but not change it (so it can
neither rename nor delete its socket), and no other run may enter it at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tandem.private_dirs import (
    UntrustedFolder,
    ensure_private_dir,
    remove_if_empty,
    runtime_root,
)
from tandem.workflows.spec import Limits

from .base import LaunchRequest
from .identity import RunUser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDir:
    root: Path
    workdir: Path
    socket: Path
    token_file: Path
    script_file: Path

    def launch_request(
        self,
        run_id: str,
        *,
        script_origin: str,
        workflow_dir: Path,
        result_fd: int,
        limits: Limits,
        user: RunUser | None,
        guards: bool = False,
    ) -> LaunchRequest:
        """What the runner needs to run the script snapshot in this folder."""
        return LaunchRequest(
            run_id=run_id,
            workdir=self.workdir,
            toolhost_socket=self.socket,
            token_file=self.token_file,
            script_file=self.script_file,
            script_origin=script_origin,
            workflow_dir=workflow_dir,
            result_fd=result_fd,
            limits=limits,
            user=user,
            guards=guards,
        )


# A base made under a random name, where the usual one was taken by another user.
_instead: dict[Path, Path] = {}


def _usual_base(state_dir: Path) -> Path:
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return runtime_root() / f"tandem-runs-{digest}"


def sandbox_base(state_dir: Path) -> Path:
    """The folder the runs' own folders go in (0711: each run's uid reaches its own only)."""
    if state_dir in _instead:
        return _instead[state_dir]
    base = _usual_base(state_dir)
    try:
        return ensure_private_dir(base, 0o711)
    except UntrustedFolder as error:
        # Never used, never fatal: the daemon takes a fresh folder no one could have made.
        made = Path(tempfile.mkdtemp(prefix=f"{base.name}-"))
        made.chmod(0o711)
        log.warning("%s; the runs' folders go in %s instead", error, made)
        _instead[state_dir] = made
        return made


def remove_sandbox_base(state_dir: Path) -> None:
    """When a host stops: the base goes once no run of any host is left in it."""
    remove_if_empty(_instead.pop(state_dir, _usual_base(state_dir)))


def run_dir(base: Path, run_id: str) -> RunDir:
    """Where `run_id`'s folder goes under `base` (nothing is made yet)."""
    root = base / run_id
    return RunDir(
        root=root,
        workdir=root / "work",
        socket=root / "toolhost.sock",
        token_file=root / "token",
        script_file=root / "script.py",
    )


def create_run_dir(run: RunDir, user: RunUser | None, token: str, script_source: str) -> None:
    """Blocking: a few metadata writes, each a journal entry (the host runs it in a thread)."""
    run.root.mkdir(mode=0o700)
    run.workdir.mkdir(mode=0o700)
    for path, text in ((run.token_file, token), (run.script_file, script_source)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
    if user is not None:
        for path in (run.workdir, run.token_file, run.script_file):
            os.chown(path, user.uid, user.gid)
        os.chown(run.root, 0, user.gid)
        run.root.chmod(0o710)


def hand_socket_to(run: RunDir, user: RunUser | None) -> None:
    """Only the run's uid (and root) may connect: connecting needs write permission."""
    if user is not None:
        os.chown(run.socket, user.uid, user.gid)
    run.socket.chmod(0o600)


def remove_run_dir(run: RunDir) -> None:
    """Blocking, like create_run_dir; whatever part of the folder exists."""
    for path in (run.token_file, run.script_file, run.socket):
        with contextlib.suppress(OSError):
            path.unlink()
    for folder in (run.workdir, run.root):
        try:
            folder.rmdir()  # empty, as the namespace tier always leaves its working directory
        except OSError:
            # rmtree does not follow symlinks a script may have planted in its working folder.
            shutil.rmtree(folder, ignore_errors=True)
