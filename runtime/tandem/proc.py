"""One class owns each subprocess: explicit environment, output captured and capped,
`stop()` graceful then forced, and safe to call twice.

The child leads its own session and process group, so stopping it signals everything it
started that stayed in the group. `OutputCapture` is the part shared with processes the
host does not start itself (a run forked by the zygote).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OutputSink = Callable[[str, bytes], None]
CHUNK = 64 * 1024
_TAIL = 4 * 1024
# After the main process exits, a grandchild may still hold its pipes open.
_DRAIN_TIMEOUT_S = 1.0


class OutputCapture:
    """Reads a child's stdout and stderr, keeps at most `output_cap` bytes of each for the
    sink, counts what it drops, and remembers the tail of stderr for error messages."""

    def __init__(self, output_cap: int, on_output: OutputSink | None) -> None:
        self.output_cap = output_cap
        self.on_output = on_output
        self.captured = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}
        self._tail = b""
        self._readers: list[asyncio.Task[None]] = []

    @property
    def stderr_tail(self) -> str:
        return self._tail.decode("utf-8", "replace")

    def follow(self, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader) -> None:
        self._readers = [
            asyncio.create_task(self._read("stdout", stdout)),
            asyncio.create_task(self._read("stderr", stderr)),
        ]

    async def drain(self) -> None:
        """Wait (bounded) for both streams to reach their end, then stop reading."""
        if not self._readers:
            return
        _, pending = await asyncio.wait(self._readers, timeout=_DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _read(self, stream: str, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(CHUNK):
            if stream == "stderr":
                self._tail = (self._tail + chunk)[-_TAIL:]
            room = self.output_cap - self.captured[stream]
            kept = chunk[: max(room, 0)]
            self.captured[stream] += len(kept)
            self.dropped[stream] += len(chunk) - len(kept)
            if kept and self.on_output:
                self.on_output(stream, kept)


async def read_pipe(
    fd: int, limit: int = CHUNK
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A StreamReader over the read end of a pipe (which it now owns), and the transport to
    close when done with it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport


def signal_group(pgid: int | None, signum: int) -> None:
    """The group led by `pgid`, and its leader itself: a child the zygote forked makes its
    group a few steps in (after joining its cgroup), and a signal sent before that must
    still reach it."""
    if pgid is None:
        return
    for send in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(pgid, signum)


async def end_group(pgid: int | None, exited: asyncio.Future[Any], grace: float) -> None:
    """SIGTERM the group, then SIGKILL once `grace` seconds pass before `exited` is done."""
    signal_group(pgid, signal.SIGTERM)
    try:
        async with asyncio.timeout(grace):
            await asyncio.shield(exited)
    except TimeoutError:
        signal_group(pgid, signal.SIGKILL)
        await exited


class CapturesOutput:
    """The output figures of a child whose streams an `OutputCapture` reads."""

    output: OutputCapture

    @property
    def stderr_tail(self) -> str:
        return self.output.stderr_tail

    @property
    def captured(self) -> dict[str, int]:
        return self.output.captured

    @property
    def dropped(self) -> dict[str, int]:
        return self.output.dropped


class ManagedProcess(CapturesOutput):
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
        output_cap: int = 256 * 1024,
        on_output: OutputSink | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.pass_fds = tuple(pass_fds)
        self.output = OutputCapture(output_cap, on_output)
        self._process: asyncio.subprocess.Process | None = None
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            pass_fds=self.pass_fds,
            start_new_session=True,
            limit=CHUNK,
        )
        assert self._process.stdout and self._process.stderr
        self.output.follow(self._process.stdout, self._process.stderr)

    async def wait(self) -> int:
        """Wait for exit, then for the output to drain (bounded), and return the exit code."""
        assert self._process is not None, "start() first"
        code = await self._process.wait()
        self.kill_group()  # whatever it left behind in its group goes with it
        await self.output.drain()
        return code

    async def stop(self, grace: float = 2.0) -> None:
        """SIGTERM the group, then SIGKILL after `grace` seconds. Idempotent."""
        process = self._process
        if process is None or self._stopped:
            return
        self._stopped = True
        if process.returncode is None:
            await end_group(process.pid, asyncio.ensure_future(process.wait()), grace)
        self.kill_group()
        await self.output.drain()

    def kill_group(self) -> None:
        signal_group(self.pid, signal.SIGKILL)


def dies_with_parent(argv: Sequence[str]) -> list[str]:
    """`argv` as a command the kernel SIGKILLs when the thread that starts it ends
    (PR_SET_PDEATHSIG; the host's event loop thread, which lives as long as the host), for
    a program that cannot ask it itself (tandem_sdk._lifetime does, for our own). setpriv
    asks between fork and exec: a preexec_fn would run Python in a child forked from the
    threaded daemon, which can crash there (a segfault now and then) or deadlock."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return list(argv)
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]
