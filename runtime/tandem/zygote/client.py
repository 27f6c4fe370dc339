"""The daemon's side of the zygote: starting it, asking it for runs, and a handle on each
forked run with the same surface as `ManagedProcess` (output captured and capped, wait,
stop, kill of the process group).

If the zygote cannot start, or dies, runs are spawned as before; the trace says which
(`process.started` has `launch: zygote|spawn`) and the daemon restarts the zygote, with a
growing pause, in the background.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from tandem.isolation.base import ForkSpec
from tandem.private_dirs import remove_if_empty
from tandem.proc import (
    CapturesOutput,
    OutputCapture,
    OutputSink,
    end_group,
    read_pipe,
    signal_group,
)

from . import protocol

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
LAUNCH_TIMEOUT_S = 5.0
_RESTART_PAUSES_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class ZygoteUnavailable(RuntimeError):
    pass


class Zygote:
    def __init__(self, root: Path, seccomp: bytes) -> None:
        self.root = root  # an empty folder each child mounts its new root on
        self.seccomp = seccomp
        self.namespace_error: str | None = "not started"
        self._control: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._control else None

    def serves(self, tier: str) -> bool:
        if self._control is None:
            return False
        return tier == "process" or (tier == "namespace" and self.namespace_error is None)

    async def start(self) -> None:
        """Start the zygote and wait until it has imported the runner; on failure log why
        and leave runs to the spawn path (the watcher tries again later)."""
        try:
            await self._start()
        except (OSError, ValueError, TimeoutError, ZygoteUnavailable) as error:
            log.warning("the zygote did not start (%s); script runs are spawned", error)
            self._schedule_restart()

    async def _start(self) -> None:
        self.root.mkdir(mode=0o700, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-B",
                "-m",
                "tandem.zygote.server",
                env={
                    "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "LANG": "C.UTF-8",
                    "TANDEM_ZYGOTE_FD": str(theirs.fileno()),
                },
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        seccomp = base64.b64encode(self.seccomp).decode()
        protocol.send(ours, {"seccomp": seccomp, "root": str(self.root)})
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                data = await loop.sock_recv(ours, 4096)
            ready = protocol.decode(data)
            if not ready or not ready.get("ready"):
                raise ZygoteUnavailable("it exited before it was ready")
        except BaseException:
            ours.close()
            await self._end_process()
            raise
        self.namespace_error = ready.get("namespace")
        if self.namespace_error:
            log.info("the zygote cannot fork into the namespace tier (%s)", self.namespace_error)
        self._control = ours
        self._failures = 0
        self._watch = asyncio.create_task(self._watch_exit(self._process))

    async def _watch_exit(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._stopping:
            return
        if self._control is not None:
            self._control.close()
            self._control = None
        log.warning("the zygote exited (status %s); script runs are spawned until it is back", code)
        self._schedule_restart()

    def _schedule_restart(self) -> None:
        if self._stopping:
            return
        pause = _RESTART_PAUSES_S[min(self._failures, len(_RESTART_PAUSES_S) - 1)]
        self._failures += 1

        async def restart() -> None:
            await asyncio.sleep(pause)
            if not self._stopping:
                await self.start()

        self._watch = asyncio.create_task(restart())

    async def send(self, message: dict[str, Any], fds: list[int]) -> None:
        control = self._control
        if control is None:
            raise ZygoteUnavailable("the zygote is not running")
        loop = asyncio.get_running_loop()
        while True:
            try:
                protocol.send(control, message, fds)
                return
            except BlockingIOError:  # its queue is full: it is busy forking
                await _writable(loop, control)

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._control is not None:
            self._control.close()  # the end of its socket: it exits
            self._control = None
        await self._end_process()
        remove_if_empty(self.root)

    async def _end_process(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        try:
            async with asyncio.timeout(2.0):
                await process.wait()
        except TimeoutError:
            signal_group(process.pid, signal.SIGKILL)
            await process.wait()


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock, wake)
    try:
        await ready
    finally:
        loop.remove_writer(sock)


class ForkedProcess(CapturesOutput):
    """A run's process, forked by the zygote; the same surface as `ManagedProcess`."""

    def __init__(
        self,
        zygote: Zygote,
        spec: ForkSpec,
        result_fd: int,
        *,
        output_cap: int,
        on_output: OutputSink | None,
    ) -> None:
        self.zygote = zygote
        self.spec = spec
        self.result_fd = result_fd
        self.output = OutputCapture(output_cap, on_output)
        self.pid: int | None = None
        self._status: socket.socket | None = None
        self._pipes: list[asyncio.BaseTransport] = []
        self._exit: asyncio.Task[int] | None = None
        self._stopped = False

    @property
    def namespace_reaped(self) -> bool:
        """True when the run had a pid namespace and its first process exited by itself:
        that process exits only after reaping the namespace's init, and the kernel ends
        every process of a namespace before its init is reaped. So nothing of the run is
        left, wherever its processes went (`sandbox.py`)."""
        exit = self._exit
        if self.spec.mounts is None or exit is None or not exit.done() or exit.cancelled():
            return False
        return exit.exception() is None and exit.result() >= 0

    async def start(self) -> None:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        status, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        status.setblocking(False)
        self._status = status
        try:
            try:
                fds = [theirs.fileno(), out_write, err_write, self.result_fd]
                await self.zygote.send({"spec": self.spec.to_json()}, fds)
            finally:
                theirs.close()
                os.close(out_write)
                os.close(err_write)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(LAUNCH_TIMEOUT_S):
                data = await loop.sock_recv(status, 4096)
            reply = protocol.decode(data) or {"error": "the zygote went away"}
            if "pid" not in reply:
                raise ZygoteUnavailable(str(reply.get("error", reply)))
        except BaseException:
            status.close()
            os.close(out_read)
            os.close(err_read)
            raise
        self.pid = int(reply["pid"])
        stdout = await self._reader(out_read)
        stderr = await self._reader(err_read)
        self.output.follow(stdout, stderr)
        self._exit = asyncio.create_task(self._exit_code())

    async def _reader(self, fd: int) -> asyncio.StreamReader:
        reader, transport = await read_pipe(fd)
        self._pipes.append(transport)
        return reader

    async def _exit_code(self) -> int:
        assert self._status is not None
        loop = asyncio.get_running_loop()
        data = await loop.sock_recv(self._status, 4096)
        message = protocol.decode(data)
        if message is None or "exit" not in message:
            # The zygote died, and its children with it (their parent-death signal).
            return -signal.SIGKILL
        return int(message["exit"])

    async def wait(self) -> int:
        """Wait for exit, then for the output to drain (bounded), and return the exit code."""
        assert self._exit is not None, "start() first"
        code = await asyncio.shield(self._exit)
        self.kill_group()
        await self._finish()
        return code

    async def stop(self, grace: float = 2.0) -> None:
        """SIGTERM the group, then SIGKILL after `grace` seconds. Idempotent."""
        if self._exit is None or self._stopped:
            return
        self._stopped = True
        if not self._exit.done():
            await end_group(self.pid, self._exit, grace)
        self.kill_group()
        await self._finish()

    def kill_group(self) -> None:
        signal_group(self.pid, signal.SIGKILL)

    async def _finish(self) -> None:
        await self.output.drain()
        for transport in self._pipes:
            transport.close()
        if self._status is not None:
            self._status.close()
