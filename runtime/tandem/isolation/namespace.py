"""The `namespace` tier: the runner inside bubblewrap, or forked into the same sandbox by
the zygote (when the daemon is root).

What the sandbox sees:
- its own pid, network (loopback only, nothing listening), ipc, uts and cgroup namespaces;
- read-only: /usr, the interpreter, the venv and the SDK, mounted at their own paths;
- read-only under /run/tandem: its token, its script, its workflow's folder and its own
  ToolHost socket, the one way out;
- writable: size-limited tmpfs at /tmp, /dev/shm and its working directory /sandbox
  (inode-limited too when the zygote mounts them: bubblewrap 0.8 cannot);
- nothing of the host's /etc, /home, /root, /var or /proc; / itself is read-only.

The process has no capabilities, no_new_privs set, a seccomp filter, a new session (so no
controlling terminal) and dies with the daemon. When the daemon is root, bubblewrap needs
no user namespace and `setpriv` drops to the run's own uid just before the runner starts;
otherwise bubblewrap makes a user namespace and forbids further ones.

Both launch paths build the file system from one list of `MountOp`s, so they cannot
drift apart: `plan()` renders it as bubblewrap arguments, `fork_spec()` hands it to the
zygote, whose child performs the same steps with mount(2).
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from .base import ForkSpec, LaunchPlan, LaunchRequest, MountOp
from .process import runner_rlimits
from .runtime_paths import runner_runtime
from .seccomp import program_fd

SANDBOX_DIR = Path("/run/tandem")
WORKDIR = "/sandbox"
HOSTNAME = "sandbox"
TMP_BYTES = 64 * 1024 * 1024
WORKDIR_BYTES = 64 * 1024 * 1024
SHM_BYTES = 16 * 1024 * 1024
# Empty files cost no tmpfs size but kernel memory (about 1 KiB each): count them too.
TMP_INODES = 8192
WORKDIR_INODES = 8192
SHM_INODES = 1024
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class NamespaceIsolation:
    name = "namespace"

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        seccomp_fd = program_fd()
        runtime = runner_runtime()
        env = sandbox_environment(request)
        argv = [shutil.which("bwrap") or "bwrap"]
        argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--hostname", HOSTNAME]
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if request.user is not None:
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            argv += ["--unshare-user", "--disable-userns"]
        argv += ["--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        for op in sandbox_mounts(request, runtime.folders):
            argv += _bwrap_args(op)
        argv += ["--remount-ro", "/", "--chdir", WORKDIR, "--seccomp", str(seccomp_fd), "--"]
        if request.user is not None:
            argv += [
                shutil.which("setpriv") or "setpriv",
                f"--reuid={request.user.uid}",
                f"--regid={request.user.gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--no-new-privs",
                "--",
            ]
        argv += [str(runtime.executable), "-I", "-B", "-m", "tandem_sdk.runner"]
        return LaunchPlan(
            argv=argv,
            # bubblewrap's own pid 1 inherits this environment: keep it as clean.
            env=env,
            cwd=Path("/"),
            pass_fds=(request.result_fd, seccomp_fd),
            owned_fds=(seccomp_fd,),
        )

    def fork_spec(self, request: LaunchRequest) -> ForkSpec | None:
        if request.user is None:
            return None  # without root the zygote would need a user namespace: bubblewrap
        return ForkSpec(
            env=sandbox_environment(request),
            cwd=WORKDIR,
            user=(request.user.uid, request.user.gid),
            mounts=tuple(sandbox_mounts(request, runner_runtime().folders)),
            hostname=HOSTNAME,
            seccomp=True,
        )


def sandbox_environment(request: LaunchRequest) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": WORKDIR,
        "TMPDIR": "/tmp",
        "TANDEM_TOOLHOST": f"unix:{SANDBOX_DIR / 'toolhost.sock'}",
        "TANDEM_TOKEN_FILE": str(SANDBOX_DIR / "token"),
        "TANDEM_RESULT_FD": str(request.result_fd),
        "TANDEM_SCRIPT": str(SANDBOX_DIR / "script.py"),
        "TANDEM_SCRIPT_ORIGIN": request.script_origin,
        "TANDEM_WORKFLOW_DIR": str(SANDBOX_DIR / "workflow"),
        "TANDEM_RLIMITS": runner_rlimits(request.limits),
        **({"TANDEM_GUARDS": "1"} if request.guards else {}),
    }


def sandbox_mounts(request: LaunchRequest, folders: tuple[Path, ...]) -> list[MountOp]:
    ops = list(_host_mounts(folders))
    ops.append(MountOp("dir", str(SANDBOX_DIR), perms=0o755))
    for source, name in (
        (request.token_file, "token"),
        (request.script_file, "script.py"),
        (request.toolhost_socket, "toolhost.sock"),
        (request.workflow_dir, "workflow"),
    ):
        ops.append(MountOp("ro-bind", str(SANDBOX_DIR / name), str(source)))
    return ops


@functools.cache
def _host_mounts(folders: tuple[Path, ...]) -> tuple[MountOp, ...]:
    """What every run's file system has, the same for all of them: built once."""
    ops = [MountOp("ro-bind", "/usr", "/usr")]
    for name in _TOP_LEVEL_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            ops.append(MountOp("symlink", str(path), str(path.readlink())))
        elif path.is_dir():
            ops.append(MountOp("ro-bind", str(path), str(path)))
    ops += [MountOp("proc", "/proc"), MountOp("dev", "/dev")]
    # Sticky and world-writable, as /tmp is: only the run's one uid is in here, and the
    # tmpfs belongs to whoever mounted it (root, when the daemon is root).
    for mount, size, inodes in (
        ("/dev/shm", SHM_BYTES, SHM_INODES),
        ("/tmp", TMP_BYTES, TMP_INODES),
        (WORKDIR, WORKDIR_BYTES, WORKDIR_INODES),
    ):
        ops.append(MountOp("tmpfs", mount, size=size, perms=0o1777, inodes=inodes))
    # The runtime's folders come after the tmpfs mounts, so a venv that lives under /tmp
    # (a checkout there) is mounted on top of the empty /tmp, not hidden by it.
    made: set[Path] = {Path("/")}
    for folder in folders:
        if folder.is_relative_to("/usr"):
            continue
        for parent in reversed(folder.parents):
            if parent not in made:
                # bubblewrap would make missing parents 0700, which the run's uid cannot cross.
                ops.append(MountOp("dir", str(parent), perms=0o755))
                made.add(parent)
        ops.append(MountOp("ro-bind", str(folder), str(folder)))
    return tuple(ops)


def _bwrap_args(op: MountOp) -> list[str]:
    match op.kind:
        case "ro-bind":
            return ["--ro-bind", op.source, op.path]
        case "symlink":
            return ["--symlink", op.source, op.path]
        case "dir":
            return ["--perms", f"{op.perms:04o}", "--dir", op.path]
        case "tmpfs":
            # bubblewrap 0.8 has no inode option: spawned, a tmpfs keeps the kernel's
            # default count (docs/sandbox.md says what bounds it then).
            return ["--size", str(op.size), "--perms", f"{op.perms:04o}", "--tmpfs", op.path]
        case "proc" | "dev":
            return [f"--{op.kind}", op.path]
    raise ValueError(f"unknown mount step {op.kind!r}")
