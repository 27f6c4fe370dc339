"""The `process` tier: a fresh interpreter in its own session and process group, with an
explicit minimal environment, a private working directory and resource limits.

When the daemon is root the runner starts as the run's own unprivileged uid (switched by
`setpriv` from util-linux, which also sets no_new_privs), so it can read neither the
daemon's files nor another run's, and everything it starts can be killed by uid. It does
not hide the host's file system, loopback network or process list: see docs/sandbox.md.

The limits are set by the runner itself before the script is imported, which is
thread-safe (no preexec_fn in the threaded daemon). stdin is /dev/null, and only the
result pipe is inherited (close_fds).
"""

from __future__ import annotations

import json
import math
import shutil
import sys

from tandem.workflows.spec import Limits

from .base import ForkSpec, LaunchPlan, LaunchRequest

OPEN_FILES = 256
FILE_SIZE_BYTES = 256 * 1024 * 1024
# Processes and threads of the run's uid together; gRPC alone starts a handful of threads.
PROCESSES = 64
# The interpreter and gRPC's threads reserve address space beyond what a script uses.
ADDRESS_SPACE_OVERHEAD_MB = 1024


class ProcessIsolation:
    name = "process"

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        argv = [sys.executable, "-I", "-B", "-m", "tandem_sdk.runner"]
        setpriv = shutil.which("setpriv")
        if request.user is not None:
            assert setpriv is not None, "the probe makes setpriv a requirement when root"
            switch = [f"--reuid={request.user.uid}", f"--regid={request.user.gid}"]
            argv = [setpriv, *switch, "--clear-groups", "--no-new-privs", "--", *argv]
        elif setpriv is not None:
            argv = [setpriv, "--no-new-privs", "--", *argv]
        return LaunchPlan(
            argv=argv,
            env=runner_environment(request),
            cwd=request.workdir,
            pass_fds=(request.result_fd,),
        )

    def fork_spec(self, request: LaunchRequest) -> ForkSpec:
        # setpriv's switch and no_new_privs, made by the forked child itself.
        user = (request.user.uid, request.user.gid) if request.user else None
        return ForkSpec(env=runner_environment(request), cwd=str(request.workdir), user=user)


def runner_rlimits(limits: Limits, *, processes: bool = True) -> str:
    rlimits = {
        "RLIMIT_AS": (limits.memory_mb + ADDRESS_SPACE_OVERHEAD_MB) * 1024 * 1024,
        "RLIMIT_CPU": math.ceil(limits.timeout_s) + 1,
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": OPEN_FILES,
        "RLIMIT_FSIZE": FILE_SIZE_BYTES,
    }
    if processes:
        rlimits["RLIMIT_NPROC"] = PROCESSES
    return json.dumps(rlimits)


def runner_environment(request: LaunchRequest) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(request.workdir),
        "TMPDIR": str(request.workdir),
        "TANDEM_TOOLHOST": f"unix:{request.toolhost_socket}",
        "TANDEM_TOKEN_FILE": str(request.token_file),
        "TANDEM_RESULT_FD": str(request.result_fd),
        "TANDEM_SCRIPT": str(request.script_file),
        "TANDEM_SCRIPT_ORIGIN": request.script_origin,
        "TANDEM_WORKFLOW_DIR": str(request.workflow_dir),
        # RLIMIT_NPROC counts every process of a uid: with the daemon's own uid it would
        # count the daemon's processes too, so it is set only for a uid of the run's own.
        "TANDEM_RLIMITS": runner_rlimits(request.limits, processes=request.user is not None),
        **({"TANDEM_GUARDS": "1"} if request.guards else {}),
    }
