"""`python -I -B -m tandem.zygote.server`: the fork server the daemon starts.

It imports what the runner needs (gRPC, protobuf, the SDK) once, creates no gRPC object
(gRPC's rule for fork: nothing of its core may exist in the parent), starts no thread, and
then forks one child per run. The daemon is its parent and its only client, over the
SOCK_SEQPACKET socket in TANDEM_ZYGOTE_FD; when the daemon goes, so does the zygote
(parent-death signal, and the end of that socket), and with it every child it forked.
"""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import socket
import sys
import traceback
from typing import Any

from tandem_sdk._lifetime import die_with_parent

from . import protocol, sandbox

_SELF_TEST_MOUNTS = [
    {"kind": "ro-bind", "path": "/usr", "source": "/usr", "size": 0, "perms": 0o755},
    {"kind": "proc", "path": "/proc", "source": "", "size": 0, "perms": 0o755},
    {"kind": "dev", "path": "/dev", "source": "", "size": 0, "perms": 0o755},
    {"kind": "tmpfs", "path": "/tmp", "source": "", "size": 1 << 20, "perms": 0o1777, "inodes": 64},
]


class Zygote:
    def __init__(self, control: socket.socket, root: str, seccomp: bytes) -> None:
        self.control = control
        self.root = root
        self.seccomp = seccomp
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, None)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data is None:
                    message, fds = protocol.receive(self.control)
                    if message is None:
                        return  # the daemon is done with us
                    self._launch(message, fds)
                else:
                    self._reap(key.fd, *key.data)

    def namespace_support(self) -> str | None:
        """None when a child can be forked into the namespace sandbox, else why not."""
        if os.geteuid() != 0:
            return "the daemon is not root"
        if not self.seccomp:
            return "no seccomp program"
        spec = {"mounts": _SELF_TEST_MOUNTS, "hostname": "sandbox", "user": None, "seccomp": True}
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = sandbox.SETUP_FAILED
            try:
                os.close(read_end)
                os.dup2(write_end, 2)
                sandbox.enter(spec, self.root, self.seccomp)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as errors:
            text = errors.read().decode("utf-8", "replace").strip()
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return None
        return text.splitlines()[-1] if text else f"status {status}"

    def _launch(self, message: dict[str, Any], fds: list[int]) -> None:
        if len(fds) != 4 or "spec" not in message:
            for fd in fds:
                os.close(fd)
            return
        status = socket.socket(fileno=fds[0])
        try:
            pid = os.fork()
        except OSError as error:
            self._tell(status, {"error": f"fork failed: {error}"})
            status.close()
        else:
            if pid == 0:
                sandbox.become_run(message["spec"], fds[1:], self.root, self.seccomp)
            self._tell(status, {"pid": pid})
            self.selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, status))
        finally:
            for fd in fds[1:]:
                os.close(fd)

    def _reap(self, pidfd: int, pid: int, status: socket.socket) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, code = os.waitpid(pid, 0)
        self._tell(status, {"exit": os.waitstatus_to_exitcode(code)})
        status.close()

    @staticmethod
    def _tell(status: socket.socket, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the daemon stopped waiting for this run
            protocol.send(status, message)


def main() -> int:
    control = socket.socket(fileno=int(os.environ.pop("TANDEM_ZYGOTE_FD")))
    die_with_parent()
    config, _ = protocol.receive(control)
    if config is None:
        return 0
    # What every run imports, done once here; a run's fork shares it copy-on-write.
    import tandem_sdk.runner  # noqa: F401

    zygote = Zygote(control, config["root"], base64.b64decode(config["seccomp"]))
    protocol.send(control, {"ready": True, "namespace": zygote.namespace_support()})
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
