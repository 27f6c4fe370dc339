"""What a forked child does to become a run's process: the tier's sandbox, applied to
itself (the same steps bubblewrap and setpriv take before they exec the runner), then the
runner, already imported.

For the `namespace` tier the child makes three processes, as bubblewrap does: the child
itself stays in the host's namespaces and waits (its pid is the run's process group, which
the daemon signals); pid 1 of the new namespaces builds the file system, stays root and
reaps; pid 2 drops to the run's uid and runs the script. pid 1 exiting takes everything
in the namespace with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from tandem_sdk._lifetime import die_with_parent

from . import linux

RESULT_FD = 3
SETUP_FAILED = 125
_NAMESPACES = (
    linux.CLONE_NEWNS
    | linux.CLONE_NEWPID
    | linux.CLONE_NEWNET
    | linux.CLONE_NEWIPC
    | linux.CLONE_NEWUTS
    | linux.CLONE_NEWCGROUP
)
_DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}


def become_run(spec: dict[str, Any], fds: list[int], root: str, seccomp: bytes) -> NoReturn:
    """In a freshly forked child of the zygote: never returns."""
    code = SETUP_FAILED
    try:
        _wire_descriptors(*fds)
        for procs in spec.get("cgroup_procs", ()):
            # First: everything the run forks from here on is counted in its cgroup.
            Path(procs).write_text(str(os.getpid()))
        zygote = os.getppid()
        os.setsid()  # a session of its own: no controlling terminal, its own process group
        linux.set_process_name("tandem-run")
        die_with_parent(zygote)
        enter(spec, root, seccomp)
        os.chdir(spec["cwd"])
        os.environ.clear()
        os.environ.update(spec["env"])
        from tandem_sdk import runner

        sys.argv = [runner.__file__]
        code = runner.main()
    except BaseException:
        sys.stderr.write("tandem: the run's sandbox could not be set up\n")
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # exiting regardless
                stream.flush()
        os._exit(code)


def enter(spec: dict[str, Any], root: str, seccomp: bytes) -> None:
    """Namespaces and file system (namespace tier), then identity and filters. Returns in
    the process that is to run the script."""
    if spec["mounts"] is not None:
        linux.unshare(_NAMESPACES)
        init = os.fork()
        if init:
            _exit_like(init)
        # pid 1 of the new namespaces, still root.
        die_with_parent(0)
        os.umask(0o022)
        _build_root(spec["mounts"], root)
        socket.sethostname(spec["hostname"])
        linux.bring_loopback_up()
        script = os.fork()
        if script:
            _reap_until(script)
        die_with_parent(1)
        linux.drop_capability_bounding_set()
    user = spec["user"]
    if user is not None:
        uid, gid = user
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # from root to another uid: every capability goes
    linux.set_no_new_privs()
    if spec["seccomp"]:
        linux.load_seccomp_filter(seccomp)


def _wire_descriptors(stdout: int, stderr: int, result: int) -> None:
    """0 is /dev/null, 1 and 2 the run's output pipes, 3 its result pipe; nothing else of
    the zygote's (its control socket, other runs' pipes) stays open."""
    devnull = os.open("/dev/null", os.O_RDWR)
    wanted = {0: devnull, 1: stdout, 2: stderr, RESULT_FD: result}
    # Out of the way first, so no dup2 below overwrites a source still to be copied.
    moved = {target: os.dup(fd) for target, fd in wanted.items()}
    for target, fd in moved.items():
        os.dup2(fd, target)
    os.closerange(RESULT_FD + 1, os.sysconf("SC_OPEN_MAX"))


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)  # as a shell reports it
    return os.waitstatus_to_exitcode(status)


def _exit_like(pid: int) -> NoReturn:
    _, status = os.waitpid(pid, 0)
    os._exit(_exit_code(status))


def _reap_until(pid: int) -> NoReturn:
    """pid 1's job: reap whatever the script leaves behind, end with the script."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if done == pid:
            os._exit(_exit_code(status))


def _build_root(mounts: list[dict[str, Any]], root: str) -> None:
    # Nothing done here may reach the host's mount table.
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0755")
    for op in mounts:
        _apply(op, root)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount_detached(".")
    os.chdir("/")
    read_only = linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY
    linux.mount(None, "/", None, read_only | linux.MS_NOSUID | linux.MS_NODEV)


def _apply(op: dict[str, Any], root: str) -> None:
    kind, source = op["kind"], op["source"]
    target = Path(root + op["path"])
    quiet = linux.MS_NOSUID | linux.MS_NODEV
    if kind == "ro-bind":
        _bind(Path(source), target, read_only=True)
    elif kind == "symlink":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    elif kind == "dir":
        # As bubblewrap's --dir: a folder that exists keeps its mode (a tmpfs /tmp stays
        # 1777 when a venv below it needs /tmp as a parent).
        if not target.is_dir():
            target.mkdir(parents=True)
            target.chmod(op["perms"])
    elif kind == "tmpfs":
        target.mkdir(parents=True, exist_ok=True)
        options = f"mode={op['perms']:o},size={op['size']}"
        if op.get("inodes"):
            options += f",nr_inodes={op['inodes']}"
        linux.mount("tmpfs", str(target), "tmpfs", quiet, options)
    elif kind == "proc":
        target.mkdir(parents=True, exist_ok=True)
        linux.mount("proc", str(target), "proc", quiet | linux.MS_NOEXEC)
    elif kind == "dev":
        _make_dev(target)
    else:
        raise ValueError(f"unknown mount step {kind!r}")


def _bind(source: Path, target: Path, *, read_only: bool) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(0o644)
    linux.mount(str(source), str(target), None, linux.MS_BIND)
    if read_only:
        flags = linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID
        linux.mount(None, str(target), None, flags | linux.MS_NODEV)


def _make_dev(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    linux.mount("tmpfs", str(target), "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=0755")
    for node in _DEV_NODES:
        # Bound read-write and without nodev: a device node must stay usable.
        _bind(Path("/dev", node), target / node, read_only=False)
    for name, points_to in _DEV_LINKS.items():
        (target / name).symlink_to(points_to)
    (target / "shm").mkdir()
    (target / "pts").mkdir()
    linux.mount(
        "devpts",
        str(target / "pts"),
        "devpts",
        linux.MS_NOSUID | linux.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620",
    )
