"""The `process` tier: a fresh interpreter in its own session and process group, with an
explicit minimal environment, a private working directory and resource limits.

It does not hide the host's file system, network or process list: see the README's
sandbox section. The limits are set by the runner itself before the script is imported,
which is thread-safe (no preexec_fn in the threaded daemon).
"""

from __future__ import annotations

import json
import math
import sys

from .base import LaunchPlan, LaunchRequest

OPEN_FILES = 256
FILE_SIZE_BYTES = 256 * 1024 * 1024
# The interpreter and gRPC's threads reserve address space beyond what a script uses.
ADDRESS_SPACE_OVERHEAD_MB = 1024


class ProcessIsolation:
    name = "process"

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        return LaunchPlan(
            argv=[sys.executable, "-I", "-B", "-m", "tandem_sdk.runner"],
            env=runner_environment(request),
            cwd=request.workdir,
            pass_fds=(request.result_fd,),
        )


def runner_environment(request: LaunchRequest) -> dict[str, str]:
    limits = request.limits
    rlimits = {
        "RLIMIT_AS": (limits.memory_mb + ADDRESS_SPACE_OVERHEAD_MB) * 1024 * 1024,
        "RLIMIT_CPU": math.ceil(limits.timeout_s) + 1,
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": OPEN_FILES,
        "RLIMIT_FSIZE": FILE_SIZE_BYTES,
    }
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
        "TANDEM_RLIMITS": json.dumps(rlimits),
    }
