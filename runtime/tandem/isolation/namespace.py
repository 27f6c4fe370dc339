"""The `namespace` tier: the runner inside bubblewrap.

What the sandbox sees:
- its own pid, network (loopback only, nothing listening), ipc, uts and cgroup namespaces;
- read-only: /usr, the interpreter, the venv and the SDK, mounted at their own paths;
- read-only under /run/tandem: its token, its script, its workflow's folder and its own
  ToolHost socket, the one way out;
- writable: size-limited tmpfs at /tmp, /dev/shm and its working directory /sandbox;
- nothing of the host's /etc, /home, /root, /var or /proc; / itself is read-only.

The process has no capabilities, no_new_privs set, a seccomp filter, a new session (so no
controlling terminal) and dies with the daemon. When the daemon is root, bubblewrap needs
no user namespace and `setpriv` drops to the run's own uid just before the runner starts;
otherwise bubblewrap makes a user namespace and forbids further ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .base import LaunchPlan, LaunchRequest
from .process import runner_rlimits
from .runtime_paths import runner_runtime
from .seccomp import program_fd

SANDBOX_DIR = Path("/run/tandem")
WORKDIR = "/sandbox"
TMP_BYTES = 64 * 1024 * 1024
WORKDIR_BYTES = 64 * 1024 * 1024
SHM_BYTES = 16 * 1024 * 1024
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class NamespaceIsolation:
    name = "namespace"

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        seccomp_fd = program_fd()
        runtime = runner_runtime()
        env = {
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
        }
        argv = [shutil.which("bwrap") or "bwrap"]
        argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--hostname", "sandbox"]
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if request.user is not None:
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            argv += ["--unshare-user", "--disable-userns"]
        argv += ["--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += _filesystem(runtime.folders)
        argv += ["--perms", "0755", "--dir", str(SANDBOX_DIR)]
        argv += ["--ro-bind", str(request.token_file), str(SANDBOX_DIR / "token")]
        argv += ["--ro-bind", str(request.script_file), str(SANDBOX_DIR / "script.py")]
        argv += ["--ro-bind", str(request.toolhost_socket), str(SANDBOX_DIR / "toolhost.sock")]
        argv += ["--ro-bind", str(request.workflow_dir), str(SANDBOX_DIR / "workflow")]
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


def _filesystem(folders: tuple[Path, ...]) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _TOP_LEVEL_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev"]
    # Sticky and world-writable, as /tmp is: only the run's one uid is in here, and the
    # tmpfs belongs to whoever mounted it (root, when the daemon is root).
    for mount, size in (("/dev/shm", SHM_BYTES), ("/tmp", TMP_BYTES), (WORKDIR, WORKDIR_BYTES)):
        args += ["--size", str(size), "--perms", "1777", "--tmpfs", mount]
    # The runtime's folders come after the tmpfs mounts, so a venv that lives under /tmp
    # (a checkout there) is mounted on top of the empty /tmp, not hidden by it.
    made: set[Path] = {Path("/")}
    for folder in folders:
        if folder.is_relative_to("/usr"):
            continue
        for parent in reversed(folder.parents):
            if parent not in made:
                # bubblewrap would make missing parents 0700, which the run's uid cannot cross.
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", str(folder), str(folder)]
    return args
