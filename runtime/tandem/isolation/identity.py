"""Per-run unprivileged identities, and the one sound way to end everything a run started.

When the daemon is root, every run gets a uid and gid of its own, drawn from a range no
account uses. That buys three things at once:
- the run cannot signal, ptrace or read the files of the daemon or of any other run;
- RLIMIT_NPROC counts only the run's own processes, so it bounds a fork bomb;
- `kill(-1, SIGKILL)` issued *as that uid* reaches every process the run started, also
  one that called setsid() or double-forked away from its process group, and nothing
  else. On Linux kill(-1) walks the task list under a lock that fork() must also take,
  so a process cannot fork its way past it.

A uid is held with a lock file for the length of the run, so two daemons on one machine
never share one, and it returns to the pool only once no process of it is left: then its
lock file is deleted. So a uid whose file exists is either in use or was left by a daemon
that died mid-run (its processes may live on), and allocation takes only uids it can
create a file for: no scan of /proc is needed to know a fresh uid has no process.
`sweep()` (at a daemon's start) deletes the files of dead daemons' uids that no process
holds any more.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tandem.private_dirs import ensure_private_dir, runtime_root

# Above the ranges Linux distributions hand to people, services and container mappings
# (systemd's container range ends at 1878982656), below the 32-bit "no uid" values.
UID_BASE = 2_000_000_000
UID_COUNT = 1 << 20
_KILL_ROUNDS = 20


@dataclass(frozen=True)
class RunUser:
    uid: int
    gid: int
    _lock: IO[bytes] | None = None
    _path: Path | None = None

    def release(self) -> None:
        """Only once no process of the uid is left: the uid is free for any daemon."""
        if self._path is not None:
            self._path.unlink(missing_ok=True)  # before the lock goes: nobody takes it meanwhile
        if self._lock is not None:
            self._lock.close()


def daemon_is_root() -> bool:
    return os.geteuid() == 0


def _lock_dir() -> Path:
    """Shared by every daemon on the machine (root's: in /run, where no one else writes)."""
    return ensure_private_dir(runtime_root() / "tandem-uids")


def allocate() -> RunUser | None:
    """A fresh uid for one run, or None when the daemon is not root and cannot switch."""
    if not daemon_is_root():
        return None
    folder = _lock_dir()
    for _ in range(100):
        uid = UID_BASE + secrets.randbelow(UID_COUNT)
        path = folder / str(uid)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:  # in use, or left by a daemon that died mid-run
            continue
        lock = os.fdopen(fd, "wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a daemon that opens files it did not create took it
            lock.close()
            continue
        return RunUser(uid, uid, lock, path)
    raise RuntimeError("no free sandbox uid found")


def sweep() -> int:
    """Delete the lock files of uids no daemon holds and no process uses any more (left by
    daemons that died mid-run); returns how many. One scan of /proc for all of them."""
    if not daemon_is_root():
        return 0
    busy = _uids_with_processes()
    swept = 0
    for path in _lock_dir().iterdir():
        if not path.name.isdigit() or int(path.name) in busy:
            continue
        with path.open("ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live daemon's run
            path.unlink(missing_ok=True)
            swept += 1
    return swept


def _uids_with_processes() -> set[int]:
    return {uid for _, uid, _ in _processes()}


def processes_of(uid: int) -> list[int]:
    """Pids of the live processes (zombies aside) whose real uid is `uid`."""
    return [pid for pid, owner, state in _processes() if owner == uid and state not in ("Z", "X")]


def _processes() -> Iterator[tuple[int, int, str]]:
    """(pid, real uid, state letter) of every process. Called at a run's end on the event
    loop, so it reads each /proc/PID/status with one read(2) and looks only at the two
    lines it needs (~1 ms for 100 processes)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (status := _status(entry.name)):
            uid = int(_field(status, b"Uid") or -1)
            yield int(entry.name), uid, _field(status, b"State")[:1].decode()


def _status(pid: str) -> bytes:
    """/proc/PID/status in one read(2), or b"" when the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _field(status: bytes, name: bytes) -> bytes:
    """The first word of a /proc/PID/status line ("Uid:\t0\t0\t0\t0" gives b"0")."""
    start = status.find(b"\n" + name + b":\t")
    if start < 0:
        return b""
    start += len(name) + 3
    end = start
    while end < len(status) and status[end] not in b"\t\n ":
        end += 1
    return status[start:end]


async def kill_all(user: RunUser) -> bool:
    """SIGKILL every process of the run's uid; True once none is left."""
    for _ in range(_KILL_ROUNDS):
        if not processes_of(user.uid):
            return True
        # /bin/sh's built-in kill, run as the run's uid: kill(-1) then reaches exactly
        # the processes that uid may signal, i.e. its own, wherever they are.
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            "kill -KILL -1",
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            env={},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        # SIGKILL is delivered at once, but a process is gone only when the kernel has
        # torn it down; give that a moment before looking again.
        for _ in range(50):
            if not processes_of(user.uid):
                return True
            await asyncio.sleep(0.01)
    return not processes_of(user.uid)
