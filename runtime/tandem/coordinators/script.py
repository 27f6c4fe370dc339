"""`coordinator: script`: each run is a fresh sandboxed runner process that imports the
workflow's script and calls its handler, reaching the host only through ToolHost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tandem.errors import RunFailed
from tandem.isolation import Isolation, LaunchRequest
from tandem.proc import ManagedProcess
from tandem.session import RunSession

MAX_RESULT_BYTES = 4 * 1024 * 1024
OUTPUT_CAP_BYTES = 256 * 1024
_RESULT_DRAIN_S = 1.0


class ScriptCoordinator:
    kind = "script"

    def __init__(self, isolation: Isolation, toolhost_socket: Path, runs_dir: Path) -> None:
        self.isolation = isolation
        self.toolhost_socket = toolhost_socket
        self.runs_dir = runs_dir

    async def run(self, session: RunSession) -> Any:
        workflow = session.workflow
        assert workflow.script_source is not None and workflow.script_path is not None
        workdir = self.runs_dir / session.id
        workdir.mkdir(mode=0o700, parents=True)
        token_file = workdir / ".token"
        token_file.touch(mode=0o600)
        token_file.write_text(session.token)
        script_file = workdir / ".script.py"
        script_file.write_text(workflow.script_source)
        read_fd, write_fd = os.pipe()
        plan = self.isolation.plan(
            LaunchRequest(
                run_id=session.id,
                workdir=workdir,
                toolhost_socket=self.toolhost_socket,
                token_file=token_file,
                script_file=script_file,
                script_origin=str(workflow.script_path),
                workflow_dir=workflow.folder,
                result_fd=write_fd,
                limits=session.limits,
            )
        )
        process = ManagedProcess(
            f"run {session.id}",
            plan.argv,
            env=plan.env,
            cwd=plan.cwd,
            pass_fds=plan.pass_fds,
            output_cap=OUTPUT_CAP_BYTES,
            on_output=lambda stream, chunk: _trace_output(session, stream, chunk),
        )
        result_task: asyncio.Task[bytes] | None = None
        try:
            try:
                await process.start()
            finally:
                os.close(write_fd)
            session.emit("process.started", pid=process.pid, isolation=self.isolation.name)
            result_task = asyncio.create_task(_read_result(read_fd))
            code = await process.wait()
            raw = await asyncio.wait_for(asyncio.shield(result_task), _RESULT_DRAIN_S)
        except TimeoutError:
            raw = b""
        finally:
            process.kill_group()
            await process.stop(grace=0)
            if result_task is not None:
                result_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await result_task
            else:
                os.close(read_fd)
            for stream, dropped in process.dropped.items():
                if dropped:
                    session.emit(
                        "output.truncated",
                        stream=stream,
                        dropped_bytes=dropped,
                        kept_bytes=process.captured[stream],
                    )
            shutil.rmtree(workdir, ignore_errors=True)
        return _outcome(raw, code)


def _trace_output(session: RunSession, stream: str, chunk: bytes) -> None:
    session.emit(stream, text=chunk.decode("utf-8", "replace"))


async def _read_result(fd: int) -> bytes:
    """Read the runner's outcome from its pipe, at most MAX_RESULT_BYTES (+1 to notice more)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_RESULT_BYTES + 1)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        data = b""
        while len(data) <= MAX_RESULT_BYTES and (chunk := await reader.read(64 * 1024)):
            data += chunk
        return data
    finally:
        transport.close()


def _outcome(raw: bytes, code: int) -> Any:
    if len(raw) > MAX_RESULT_BYTES:
        raise RunFailed(f"the handler's output is larger than {MAX_RESULT_BYTES} bytes")
    if not raw:
        raise RunFailed(f"the script process exited with status {code} before reporting a result")
    try:
        outcome = json.loads(raw)
    except json.JSONDecodeError as error:
        raise RunFailed(f"the script process reported a malformed result: {error}") from None
    if outcome.get("ok"):
        return outcome.get("output")
    raise RunFailed(
        str(outcome.get("error", "the script failed")), details=outcome.get("traceback")
    )
