"""`coordinator: script`: each run is a fresh sandboxed runner process that imports the
workflow's script and calls its handler, reaching the host only through ToolHost.

The process is forked by the zygote when it serves the run's tier (a few milliseconds),
else spawned (an interpreter start, ~100 ms); the sandbox is the same either way."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from tandem.blocking import in_thread
from tandem.errors import Escalated, RunFailed
from tandem.isolation import (
    Isolation,
    IsolationChoice,
    IsolationUnavailable,
    LaunchRequest,
    cgroups,
    identity,
)
from tandem.isolation.cgroups import RunCgroups, RunGroup
from tandem.isolation.identity import RunUser
from tandem.isolation.rundir import (
    RunDir,
    create_run_dir,
    hand_socket_to,
    remove_run_dir,
    run_dir,
    sandbox_base,
)
from tandem.proc import ManagedProcess, read_pipe
from tandem.server.run_gate import run_gate
from tandem.server.toolhost import ToolHostServicer
from tandem.session import RunSession
from tandem.zygote.client import ForkedProcess, Zygote, ZygoteUnavailable
from tandem.zygote.sandbox import RESULT_FD

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 4 * 1024 * 1024
OUTPUT_CAP_BYTES = 256 * 1024
_RESULT_DRAIN_S = 1.0


class ScriptCoordinator:
    kind = "script"

    def __init__(
        self,
        isolation: Isolation | IsolationChoice,
        runs_dir: Path,
        zygote: Zygote | None = None,
        cgroups: RunCgroups | None = None,
    ) -> None:
        if not isinstance(isolation, IsolationChoice):
            isolation = IsolationChoice(isolation, {isolation.name: isolation})
        self.tiers = isolation
        self.isolation = isolation.default
        self.runs_dir = runs_dir
        self.zygote = zygote
        self.cgroups = cgroups  # None: limits per process only (docs/sandbox.md)
        # The servicer every coordinator's calls reach, served on each run's own socket.
        # Set by the host once it exists: it is built on the RunManager, which holds this
        # coordinator.
        self.toolhost: ToolHostServicer | None = None

    async def run(self, session: RunSession) -> Any:
        workflow = session.workflow
        assert workflow.script_source is not None and workflow.script_path is not None
        assert self.toolhost is not None, "the host has not handed over its ToolHost servicer"
        try:
            isolation = self.tiers.for_workflow(workflow.spec.isolation)
        except IsolationUnavailable as error:
            raise RunFailed(error.message) from None
        rundir = run_dir(sandbox_base(self.runs_dir), session.id)
        user = identity.allocate()
        ended = _Ended()
        group: RunGroup | None = None
        ours = True  # the folder is this run's to remove unless it was there before it
        try:
            try:
                await in_thread(create_run_dir, rundir, user, session.token, workflow.script_source)
            except FileExistsError:  # only the folder itself can be: it holds nothing else yet
                ours = False
                raise
            if self.cgroups is not None:
                group = await in_thread(self.cgroups.create, session.id, session.limits)
            async with run_gate(rundir.socket, self.toolhost, session.id):
                hand_socket_to(rundir, user)
                return await self._launch(session, isolation, rundir, user, group, ended)
        finally:
            if group is not None and not await in_thread(cgroups.remove, group):
                log.error("run %s: its cgroup %s could not be emptied", session.id, group.dirs)
            # Whatever the run started, wherever it went (setsid, double fork), dies here,
            # before its folder goes, so nothing is still writing into it; its uid is free
            # for another run only once nothing of it is left, folder included. A pid
            # namespace whose init was reaped has nothing left in it: no need to look.
            if user is not None and not (ended.namespace_reaped or await identity.kill_all(user)):
                log.error("run %s: processes of uid %d survived SIGKILL", session.id, user.uid)
                user = None  # kept: no other run may have the uid of processes still alive
            if ours:
                await in_thread(remove_run_dir, rundir)
            if user is not None:
                user.release()

    async def _launch(
        self,
        session: RunSession,
        isolation: Isolation,
        rundir: RunDir,
        user: RunUser | None,
        group: RunGroup | None,
        ended: _Ended,
    ) -> Any:
        workflow = session.workflow
        assert workflow.script_path is not None
        read_fd, write_fd = os.pipe()
        request = rundir.launch_request(
            session.id,
            script_origin=str(workflow.script_path),
            workflow_dir=workflow.folder,
            result_fd=write_fd,
            limits=session.limits,
            user=user,
        )
        try:
            process = await self.start_process(session, isolation, request, group)
        except BaseException:
            os.close(read_fd)
            raise
        result_task: asyncio.Task[bytes] | None = None
        try:
            session.emit(
                "process.started",
                pid=process.pid,
                isolation=isolation.name,
                uid=user.uid if user else os.getuid(),
                launch="zygote" if isinstance(process, ForkedProcess) else "spawn",
            )
            result_task = asyncio.create_task(_read_result(read_fd))
            code = await process.wait()
            ended.namespace_reaped = isinstance(process, ForkedProcess) and process.namespace_reaped
            async with asyncio.timeout(_RESULT_DRAIN_S):
                raw = await asyncio.shield(result_task)
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
        killed = group.oom_kills() if group is not None else 0
        if killed and group is not None:
            limit_mb = group.limit_bytes // (1024 * 1024)
            session.emit("memory.limit_reached", limit_mb=limit_mb, killed=killed)
            if not raw:
                raise RunFailed(
                    f"the run reached its memory limit of {limit_mb} MiB (memory_mb + "
                    f"{cgroups.RUNNER_MEMORY_MB} MiB for the runner): the kernel killed "
                    f"{killed} of its processes, the script's own among them"
                )
        return _outcome(raw, code)

    async def start_process(
        self,
        session: RunSession,
        isolation: Isolation,
        request: LaunchRequest,
        group: RunGroup | None,
    ) -> ManagedProcess | ForkedProcess:
        """Forked by the zygote when it serves this tier, else spawned. Either way the
        result pipe's write end is closed here once the child holds it."""

        def trace(stream: str, chunk: bytes) -> None:
            session.emit(stream, text=chunk.decode("utf-8", "replace"))

        try:
            if self.zygote is not None and self.zygote.serves(isolation.name):
                # The child finds its result pipe at a fixed descriptor, not the daemon's.
                spec = isolation.fork_spec(dataclasses.replace(request, result_fd=RESULT_FD))
                if spec is not None:
                    if group is not None:
                        spec = dataclasses.replace(spec, cgroup_procs=group.procs_files)
                    forked = ForkedProcess(
                        self.zygote,
                        spec,
                        request.result_fd,
                        output_cap=OUTPUT_CAP_BYTES,
                        on_output=trace,
                    )
                    with contextlib.suppress(ZygoteUnavailable):  # it just went: spawn instead
                        await forked.start()
                        return forked
            plan = isolation.plan(request)
            argv, env = plan.argv, plan.env
            if group is not None:  # joined by a shell step before the launcher runs
                argv, env = group.join_command() + argv, {**env, **group.join_env()}
            process = ManagedProcess(
                f"run {session.id}",
                argv,
                env=env,
                cwd=plan.cwd,
                pass_fds=plan.pass_fds,
                output_cap=OUTPUT_CAP_BYTES,
                on_output=trace,
            )
            try:
                await process.start()
            finally:
                for fd in plan.owned_fds:
                    os.close(fd)
            return process
        finally:
            os.close(request.result_fd)


@dataclasses.dataclass
class _Ended:
    """How a run's process ended, for the clean-up after it."""

    namespace_reaped: bool = False


async def _read_result(fd: int) -> bytes:
    """Read the runner's outcome from its pipe, at most MAX_RESULT_BYTES (+1 to notice more)."""
    reader, transport = await read_pipe(fd, MAX_RESULT_BYTES + 1)
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
    if isinstance(escalation := outcome.get("escalate"), dict):
        raise Escalated(str(escalation.get("reason", "")), escalation.get("context"))
    raise RunFailed(
        str(outcome.get("error", "the script failed")), details=outcome.get("traceback")
    )
