"""One run's guard process: the workflow's guards.py in the sandbox a script of the run
would get, never in the daemon.

It is the script runner started by the script coordinator's own launch path (forked by
the zygote when it serves the tier, else spawned), with TANDEM_GUARDS=1 and a socket for
its result descriptor; it has no ToolHost (an empty file stands where a script's socket
is, so the sandbox is built from the same mounts). Started at the first question, it lives
until the run ends; one that fails to answer in time is killed and started afresh at the
next question.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from tandem.blocking import in_thread
from tandem.isolation import IsolationUnavailable, cgroups, identity
from tandem.isolation.cgroups import RunGroup
from tandem.isolation.identity import RunUser
from tandem.isolation.rundir import RunDir, create_run_dir, remove_run_dir, run_dir, sandbox_base
from tandem.proc import ManagedProcess
from tandem.workflows.spec import Limits
from tandem.zygote.client import ForkedProcess

if TYPE_CHECKING:
    from tandem.coordinators.script import ScriptCoordinator
    from tandem.session import RunSession

log = logging.getLogger(__name__)

# Loading guards.py (an interpreter start when spawned) is not a guard's answer: it has
# its own, wider bound.
START_TIMEOUT_S = 30.0
MAX_REPLY_BYTES = 64 * 1024


def guard_limits(limits: Limits, guard_timeout_s: float) -> Limits:
    """The run's limits, but a CPU bound (RLIMIT_CPU, from timeout_s) for the process's
    whole life, as many questions as a run can ask: each question is bounded by its own
    deadline (guards.timeout_s), so CPU spent on earlier ones never refuses a later one."""
    questions = 2 * limits.max_tool_calls  # a call held for approval is asked twice
    life = max(limits.timeout_s, questions * guard_timeout_s)
    return limits.model_copy(update={"timeout_s": life})


class GuardFailed(Exception):
    """The guard process gave no verdict: it timed out, died or could not start."""


class GuardProcess:
    def __init__(self, scripts: ScriptCoordinator | None, session: RunSession) -> None:
        self._scripts = scripts
        self._session = session
        self._lock = asyncio.Lock()  # one question at a time on the socket
        self._process: ManagedProcess | ForkedProcess | None = None
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._rundir: RunDir | None = None
        self._user: RunUser | None = None
        self._group: RunGroup | None = None  # with the host's cgroups, as a script run has
        self.sent = 0  # entries of the history this process has been sent

    async def ask(
        self, guard: str, call: dict[str, Any], history: list[dict[str, Any]], timeout_s: float
    ) -> dict[str, Any]:
        """The guard process's reply to one question; GuardFailed when there is none (the
        process is then stopped, and the next question starts another)."""
        async with self._lock:
            if self._streams is None:
                await self._start()
            assert self._streams is not None
            reader, writer = self._streams
            # Calls may be recorded while the guard thinks: send up to `end`, no further.
            end = len(history)
            question = {"guard": guard, "call": call, "history": history[self.sent : end]}
            try:
                async with asyncio.timeout(timeout_s):
                    writer.write(json.dumps(question).encode() + b"\n")
                    await writer.drain()
                    reply = _reply(await reader.readline())
            except TimeoutError:
                await self._stop()
                raise GuardFailed(f"no answer within {timeout_s:g}s (guards.timeout_s)") from None
            except (OSError, ValueError, GuardFailed) as error:
                await self._stop()
                raise GuardFailed(str(error)) from None
            except asyncio.CancelledError:
                await asyncio.shield(self._stop())  # its answer, if any, must not be read
                raise
            self.sent = end
            return reply

    async def _start(self) -> None:
        """Launch the process and wait until guards.py is loaded; GuardFailed if it is not
        (nothing of the attempt is left)."""
        try:
            await self._launch()
        except TimeoutError:
            await self._stop()
            raise GuardFailed(f"guards.py did not load within {START_TIMEOUT_S:g}s") from None
        except GuardFailed:
            await self._stop()
            raise
        except Exception as error:
            log.exception("run %s: the guard process could not start", self._session.id)
            await self._stop()
            raise GuardFailed(f"the guard process could not start: {error}") from None
        except BaseException:
            await self._stop()
            raise

    async def _launch(self) -> None:
        session = self._session
        workflow = session.workflow
        assert workflow.guards_source is not None
        scripts = self._scripts
        if scripts is None:
            raise GuardFailed("this host has no sandbox to run guards in")
        try:
            isolation = scripts.tiers.for_workflow(workflow.spec.isolation)
        except IsolationUnavailable as error:
            raise GuardFailed(error.message) from None
        base = sandbox_base(scripts.runs_dir)
        self._rundir = rundir = run_dir(base, f"{session.id}.guards")
        self._user = user = identity.allocate()
        await in_thread(create_run_dir, rundir, user, "", workflow.guards_source)
        rundir.socket.touch(0o400)  # no ToolHost: see the module's docstring
        limits = guard_limits(session.limits, workflow.spec.guards.timeout_s)
        if scripts.cgroups is not None:  # its memory bounded, its children killed with it
            self._group = await in_thread(scripts.cgroups.create, f"{session.id}.guards", limits)
        ours, theirs = socket.socketpair()
        try:
            request = rundir.launch_request(
                session.id,
                script_origin=str(workflow.folder / "guards.py"),
                workflow_dir=workflow.folder,
                result_fd=os.dup(theirs.fileno()),  # closed by start_process once handed over
                limits=limits,
                user=user,
                guards=True,
            )
            theirs.close()
            self._process = await scripts.start_process(session, isolation, request, self._group)
            self._streams = await asyncio.open_connection(sock=ours, limit=MAX_REPLY_BYTES)
        finally:
            theirs.close()
            if self._streams is None:
                ours.close()
        async with asyncio.timeout(START_TIMEOUT_S):
            ready = _reply(await self._streams[0].readline())
        if "ready" not in ready:
            raise GuardFailed(f"guards.py did not load: {ready.get('broken', ready)}")
        self.sent = 0
        launch = "zygote" if isinstance(self._process, ForkedProcess) else "spawn"
        session.emit(
            "guards.started", pid=self._process.pid, isolation=isolation.name, launch=launch
        )

    async def stop(self) -> None:
        async with self._lock:
            await self._stop()

    async def _stop(self) -> None:
        streams, process, rundir, user = self._streams, self._process, self._rundir, self._user
        group = self._group
        self._streams = self._process = self._rundir = self._user = self._group = None
        if streams is not None:
            streams[1].close()
        if process is not None:
            process.kill_group()
            await process.stop(grace=0)
        if group is not None and not await in_thread(cgroups.remove, group):
            log.error(
                "run %s: the guards' cgroup %s could not be emptied", self._session.id, group.dirs
            )
        if user is not None and not await identity.kill_all(user):
            log.error("run %s: guard processes of uid %d survived", self._session.id, user.uid)
            user = None  # kept, as a run's uid is
        if rundir is not None:
            await in_thread(remove_run_dir, rundir)
        if user is not None:
            user.release()


def _reply(line: bytes) -> dict[str, Any]:
    if not line:
        raise GuardFailed("the guard process exited")
    try:
        reply = json.loads(line)
    except json.JSONDecodeError as error:
        raise GuardFailed(f"the guard process answered malformed JSON: {error}") from None
    if not isinstance(reply, dict):
        raise GuardFailed("the guard process answered something else than an object")
    with contextlib.suppress(KeyError):
        if reply["ok"] is False:  # the runner's own report: it failed before serving
            return {"broken": reply.get("error")}
    return reply
