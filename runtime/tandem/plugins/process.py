"""One plugin subprocess: started, described, supervised and restarted with backoff.

Each launch is a `Generation` (process, and the `link` that reaches it). What happens to
calls when the process dies (docs/architecture.md, "When a plugin dies"):

- A call in flight fails at once with ToolUnavailable naming the plugin: the plugin may
  have started it, so it is never retried. The first call to see the connection break
  marks the generation lost, so later calls wait for the next one instead of reaching a
  dead socket.
- A call that never reached the process (the link could not connect, or found the
  connection closed before writing) waits for the restarted process within its own
  timeout and is sent again.
- Every call is bounded by the plugin's `call_timeout_s`, waiting included: a plugin too
  slow to answer is ToolTimeout, one that is down for all that time ToolUnavailable.
- Restarts back off exponentially; a plugin that keeps dying is reported at ERROR as a
  crash loop, and calls that cannot be served before their deadline fail at once.
- A code change (`reload`) starts the new code beside the old: new calls go to the new
  process once it is described, the old one finishes its calls and stops. New code that
  fails to load leaves the old process serving, and the error is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from tandem_sdk._pb import plugin_pb2
from tandem_sdk.errors import DefinitionError, NotFound, ToolError, ToolTimeout, ToolUnavailable

from tandem.blocking import in_thread
from tandem.tools import HostTool

from .confine import PluginSandbox
from .launch import Generation, environment_digests, launch
from .link import LinkBroken, LinkError, NeverSent, PluginFailure, ReplyTooLarge
from .manifest import PluginManifest
from .provider import retire
from .restarts import STABLE_AFTER_S, Restarts
from .standby import Standby

log = logging.getLogger(__name__)


class PluginProcess:
    def __init__(
        self,
        manifest: PluginManifest,
        socket_dir: Path,
        data_dir: Path,
        standby: Standby | None = None,
        confine: bool = False,
        given: Mapping[str, str] | None = None,
    ) -> None:
        """`standby`: a process started ahead for this plugin, to take its first start.
        `confine`: run it as a uid of its own where the host can (confine.py). `given`:
        variables the host sets in its environment besides its secrets."""
        self.manifest = manifest
        self.given = dict(given or {})
        self.name = manifest.name
        self.socket_dir = socket_dir
        self.data_dir = data_dir
        self._launches = 0  # each process gets a socket of its own
        self.tools: list[HostTool] = []
        self.restarts = 0
        self.last_error: str | None = None
        # Why the newest code does not load, while the previous code serves on.
        self.load_error: str | None = None
        self._exits = Restarts(f"plugin {self.name}", log)
        self._generation: Generation | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._swapped = asyncio.Event()  # a reload replaced the process the supervisor watches
        self._reloading = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()  # replaced processes finishing up
        # A process started ahead of the next start: given, or once the code has changed.
        self._standby: Standby | asyncio.Task[Standby] | None = standby
        # Its own uid and folders, from start to stop, when the host confines plugins.
        self.sandbox: PluginSandbox | None = None
        self._confine = confine

    kind = "plugin"

    def environment_digests(self, nonce: bytes) -> dict[str, str]:
        return environment_digests(self.manifest, nonce)

    @property
    def crash_loop(self) -> bool:
        return self._exits.crash_loop

    @property
    def up(self) -> bool:
        return self._ready.is_set()

    @property
    def pid(self) -> int | None:
        return self._generation.process.pid if self._generation else None

    @property
    def uid(self) -> int | None:
        """The uid its processes run as, when it has one of its own."""
        return self.sandbox.user.uid if self.sandbox else None

    @property
    def version(self) -> str | None:
        """The content hash of the code serving now."""
        return self._generation.version if self._generation else None

    async def start(self) -> None:
        """Start and describe the plugin; DefinitionError if it cannot load."""
        sandbox = None
        if self._confine:
            sandbox = PluginSandbox.allocate(
                self.manifest.folder, self.data_dir, self.socket_dir / f"plugin-{self.name}"
            )
        if sandbox is not None:
            self.sandbox = sandbox
            try:
                await in_thread(sandbox.prepare)
                await self._launch()
            except BaseException:
                await self._release_sandbox()
                raise
        else:
            await self._launch()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"plugin-{self.name}")

    async def invoke(
        self,
        tool: str,
        arguments_json: str,
        run_id: str,
        workflow: str,
        *,
        time_left_s: float | None = None,
    ) -> str:
        """Run `tool` within the plugin's call timeout, and within `time_left_s` (the
        run's) when given; returns the result JSON, raises ToolError or an InterfaceError."""
        full_name = f"{self.name}.{tool}"
        budget = self.manifest.call_timeout_s
        if time_left_s is not None:
            budget = max(min(budget, time_left_s), 0.001)
        deadline = time.monotonic() + budget
        request = plugin_pb2.InvokeRequest(
            tool=tool,
            arguments_json=arguments_json,
            run=plugin_pb2.RunContext(
                run_id=run_id, workflow=workflow, deadline_unix=time.time() + budget
            ),
        )
        while True:
            generation = await self._serving(full_name, deadline, budget)
            generation.in_flight += 1
            try:
                reply = await generation.link.invoke(request, _remaining(deadline))
            except NeverSent as error:
                self._lose(generation, f"connection failed: {error}")
                continue  # the process never saw it: send it to the next one
            except LinkBroken as error:
                self._lose(generation, f"connection failed: {error}")
                raise self._went_away(full_name, str(error)) from None
            except TimeoutError:
                raise ToolTimeout(
                    f"{full_name}: plugin {self.name!r} did not answer within {budget:g}s",
                    tool=full_name,
                ) from None
            except LinkError as error:
                raise self._call_error(error, full_name) from None
            finally:
                generation.in_flight -= 1
                if generation.in_flight == 0:
                    generation.idle.set()
            generation.served = True
            if reply.is_error:
                raise ToolError(
                    reply.error.message,
                    tool=full_name,
                    type=reply.error.type,
                    retryable=reply.error.retryable,
                )
            return reply.result_json or "null"

    async def _serving(self, tool: str, deadline: float, budget: float) -> Generation:
        """The live generation, waiting for a restart to finish if need be."""
        while True:
            generation = self._generation
            if self._ready.is_set() and generation is not None and not generation.lost:
                return generation
            await self._exits.await_restart(
                self._ready,
                tool=tool,
                who=f"plugin {self.name!r}",
                deadline=deadline,
                budget=budget,
                stopping=self._stopping,
                last_error=lambda: self.last_error,
            )

    def _lose(self, generation: Generation, why: str = "") -> None:
        """Stop sending calls to `generation`; the supervisor restarts the process."""
        if generation.lost:
            return
        generation.lost = True
        if generation is self._generation:
            self._ready.clear()
        if why:  # the supervisor reports exits itself
            log.warning("plugin %s (pid %s) lost: %s", self.name, generation.process.pid, why)
        generation.process.kill_group()  # a process we cannot reach is of no use

    def _went_away(self, tool: str, details: str | None) -> ToolUnavailable:
        return ToolUnavailable(
            f"{tool}: plugin {self.name!r} went away during the call ({details}); "
            "it is being restarted",
            tool=tool,
        )

    def _call_error(self, error: LinkError, tool: str) -> Exception:
        """A call the process answered without serving it, or whose answer is too large."""
        if isinstance(error, PluginFailure) and error.code == "not_found":
            return NotFound(error.message, tool=tool)
        if isinstance(error, ReplyTooLarge):
            return ToolUnavailable(
                f"{tool}: plugin {self.name!r} answered with {error.size} bytes, over the "
                f"message limit of {error.limit} bytes (raise it with TANDEM_MAX_MESSAGE_BYTES "
                "in the daemon's environment)",
                tool=tool,
            )
        return ToolUnavailable(f"{tool}: plugin {self.name!r} is unavailable ({error})", tool=tool)

    async def stop(self) -> None:
        self._stopping = True
        self._ready.set()  # wake waiting calls, which see _stopping and fail
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for task in list(self._retiring):
            task.cancel()  # their processes stop below, with the channel closed
        await asyncio.gather(*self._retiring, return_exceptions=True)
        standby = await self._take_standby()
        if standby is not None:
            await standby.close()
        await self._teardown()
        await self._release_sandbox()

    async def _release_sandbox(self) -> None:
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            await sandbox.release()

    async def _launch(self) -> None:
        """Start the plugin as the serving process (at start and after a crash)."""
        generation = await self._spawn(self.manifest)
        self._generation = generation
        self.tools = generation.tools
        self.last_error = self.load_error = None  # the files on disk loaded
        self._ready.set()

    async def _spawn(self, manifest: PluginManifest) -> Generation:
        self._launches += 1
        sandbox = self.sandbox
        if sandbox is not None and sandbox.plugin_folder != manifest.folder:
            # The plugin moved: the same uid, with the new folder to read.
            sandbox = self.sandbox = dataclasses.replace(sandbox, plugin_folder=manifest.folder)
        # A path no longer than without a folder of its own: AF_UNIX paths are short.
        socket = self.socket_dir / f"plugin-{manifest.name}-{self._launches}.sock"
        if sandbox is not None:
            socket = sandbox.socket_dir / f"{self._launches}.sock"
        standby = await self._take_standby()
        return await launch(manifest, socket, self.data_dir, standby, sandbox, self.given)

    def _prepare_standby(self, manifest: PluginManifest) -> None:
        """A plugin whose code changed is being worked on: start a process ahead of its
        next change (or restart), unless one is waiting already."""
        if self._standby is None and not self._stopping:
            self._standby = asyncio.create_task(
                Standby.start(manifest.name, self.data_dir, self.sandbox),
                name=f"standby-{self.name}",
            )

    async def _take_standby(self) -> Standby | None:
        """The standby process, if one started (waiting for it if it is still starting)."""
        task, self._standby = self._standby, None
        if task is None or isinstance(task, Standby):
            return task
        try:
            return await task
        except Exception as error:
            log.warning("plugin %s: could not start a standby process: %r", self.name, error)
            return None

    async def reload(self, manifest: PluginManifest) -> DefinitionError | None:
        """Serve new code: start it beside the old process and switch once it is described;
        the old process finishes its calls in flight, then stops. None when the new code
        serves, else why it cannot load (the old process keeps serving; `load_error` says
        why until code that loads replaces it)."""
        async with self._reloading:
            began = time.monotonic()
            try:
                generation = await self._spawn(manifest)
            except DefinitionError as error:
                self._prepare_standby(manifest)
                self.load_error = str(error)
                log.warning(
                    "plugin %s: the new code does not load; the old keeps serving: %s",
                    self.name,
                    error,
                )
                return error
            old, self._generation = self._generation, generation
            self.manifest, self.tools, self.last_error = manifest, generation.tools, None
            self.load_error = None
            self._ready.set()
            self._swapped.set()
            self._prepare_standby(manifest)
            log.info(
                "plugin %s reloaded (version %s, pid %s) in %.0f ms",
                self.name,
                generation.version,
                generation.process.pid,
                (time.monotonic() - began) * 1000,
            )
            if old is not None:
                old.retired = True
                task = asyncio.create_task(
                    retire(old, manifest.call_timeout_s), name=f"retire-{self.name}"
                )
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
            return None

    async def _supervise(self) -> None:
        while not self._stopping:
            generation = self._generation
            assert generation is not None
            started = time.monotonic()
            self._swapped.clear()
            exited = asyncio.ensure_future(generation.process.wait())
            swapped = asyncio.ensure_future(self._swapped.wait())
            try:
                await asyncio.wait({exited, swapped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                swapped.cancel()
            if not exited.done():  # a reload: watch the new process instead
                exited.cancel()
                continue
            code = exited.result()
            if generation is not self._generation:
                continue  # a replaced process that ended: not a crash
            self._lose(generation)
            self.last_error = (
                f"exited with status {code}: {generation.process.stderr_tail.strip()[-500:]}"
            )
            await self._teardown()
            if generation.served or time.monotonic() - started > STABLE_AFTER_S:
                self._exits.healthy()
            while not self._stopping:
                await asyncio.sleep(self._exits.note_exit(self.last_error))
                restart_began = time.monotonic()
                try:
                    await self._launch()
                except DefinitionError as error:
                    self.last_error = str(error)
                    log.warning("plugin %s failed to restart: %s", self.name, error)
                    continue
                self.restarts += 1
                log.info(
                    "plugin %s restarted (pid %s) in %.0f ms",
                    self.name,
                    self.pid,
                    (time.monotonic() - restart_began) * 1000,
                )
                break

    async def _teardown(self) -> None:
        self._ready.clear()
        if self._generation is not None:
            await self._generation.close()


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)
