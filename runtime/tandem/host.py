"""The host: plugins, workflows, the run store and the gRPC servers, started and stopped
as one. `tandem serve` runs it as a daemon; `tandem run` embeds one for a single run,
through the same code paths."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from typing import IO

import grpc
from tandem_sdk._pb import control_pb2_grpc, toolhost_pb2_grpc
from tandem_sdk.errors import TandemError
from tandem_sdk.protocol import GRPC_OPTIONS

from .cluster.heartbeat import Heartbeat
from .cluster.node import Node
from .config import CONFIG_FILE, ProjectConfig
from .coordinators.mcp import McpCoordinator
from .coordinators.script import ScriptCoordinator
from .isolation import choose_isolation, identity
from .isolation.probe import run_limits
from .isolation.rundir import remove_sandbox_base, sandbox_base
from .isolation.seccomp import SeccompUnavailable, filter_program
from .llm.api import KEY_VARIABLE, ModelApi
from .llm.coordinator import LlmCoordinator
from .llm.subagent import SubagentService
from .plugins import PluginManager, confine
from .private_dirs import remove_if_empty
from .runs import RunManager
from .server.control import ControlServicer
from .server.toolhost import ToolHostServicer
from .store import open_store
from .workflows import WorkflowRegistry
from .zygote.client import Zygote

log = logging.getLogger(__name__)


def _zygote(runs_base: Path) -> Zygote:
    try:
        seccomp = filter_program()
    except SeccompUnavailable:
        seccomp = b""  # the zygote then serves the process tier only
    return Zygote(runs_base / "zygote-root", seccomp)


class HostAlreadyRunning(TandemError):
    pass


class Host:
    def __init__(
        self,
        config: ProjectConfig,
        *,
        daemon: bool,
        plugins: Collection[str] | None = None,
        plugin_manager: PluginManager | None = None,
        zygote: bool | None = None,
        skip_llm_shadows: str | None = None,
    ) -> None:
        """`plugins`: start only these. `plugin_manager`: one made for this host already,
        perhaps starting (`PluginManager.begin`), on the loop this host will run on.
        `zygote`: fork script runs from a zygote; by default a daemon does (when the config
        allows) and an embedded host, which serves a single run, does not.
        `skip_llm_shadows`: why llm shadows get no model here (as without a key)."""
        self.config = config
        self.daemon = daemon
        # Checked before the store opens: a state folder others may write is refused.
        config.ensure_dirs()
        # Probed here, so a daemon that cannot isolate as asked says so before it starts.
        self.isolation_choice = choose_isolation(
            config.isolation, fallback=config.isolation_fallback
        )
        self.isolation = self.isolation_choice.default
        # Each host instance gets its own socket folder so an embedded run never touches a
        # daemon's sockets; only the Control socket has a well-known path.
        self.private_dir = config.host_socket_dir
        self.toolhost_socket = self.private_dir / "toolhost.sock"
        self.control_socket = (
            config.control_socket if daemon else config.embedded_control_socket(os.getpid())
        )
        self.store = open_store(config)
        # One member of the hosts sharing the store (a daemon also takes their queued runs).
        self.node = Node(self.store, config.cluster, config.state_dir, daemon=daemon)
        if plugin_manager is None:
            plugin_manager = PluginManager.for_host(config, plugins, confine=daemon)
        self.plugins = plugin_manager
        self.registry = WorkflowRegistry(
            config.workflows_dir, self.plugins.tool_names, lambda: self.plugins.broken
        )
        runs_dir = config.state_dir / "runs"
        wanted = (daemon if zygote is None else zygote) and config.zygote
        self.zygote = _zygote(sandbox_base(runs_dir)) if wanted else None
        self.cgroups, self.cgroups_note = run_limits()
        scripts = ScriptCoordinator(self.isolation_choice, runs_dir, self.zygote, self.cgroups)
        # The model's key stays in this process; the LLM loop reaches tools over ToolHost.
        self.model_api = ModelApi.from_env()
        self.runs = RunManager(
            self.store,
            self.plugins,
            self.registry,
            {
                "script": scripts,
                "llm": LlmCoordinator(self.model_api, self.toolhost_socket),
                "mcp": McpCoordinator(),
            },
            node=self.node,
            record_max_result_bytes=config.record_max_result_bytes,
            max_in_flight=config.max_in_flight,
            max_queued=config.max_queued,
        )
        self.runs.skip_llm_shadows = skip_llm_shadows or (
            None if self.model_api.configured else f"no model: {KEY_VARIABLE} is not set"
        )
        # One servicer for every coordinator: the shared socket serves it to the LLM loop
        # and its subagents, and each script run's own socket serves this same instance.
        self.toolhost = ToolHostServicer(
            self.runs, SubagentService(self.model_api, self.toolhost_socket)
        )
        scripts.toolhost = self.toolhost
        self.interrupted: list[str] = []
        self.adopted: list[str] = []  # queued runs this daemon took as it started
        self._heartbeat: asyncio.Task[None] | None = None
        self._servers: list[grpc.aio.Server] = []
        self._lock: IO[str] | None = None

    async def start(self) -> None:
        if self.daemon:
            self._take_lock()
            identity.sweep()  # run uids that daemons which died left behind
        self.private_dir.mkdir(mode=0o700, exist_ok=True)
        self.interrupted = self.node.join().interrupted
        # Its interpreter imports gRPC while the plugins start theirs.
        zygote = asyncio.create_task(self.zygote.start()) if self.zygote else None
        await self.plugins.start()
        for error in self.plugins.errors:
            log.warning("%s", error)  # a plugin that does not load is a problem, not news
        self.reload()
        toolhost = grpc.aio.server(options=GRPC_OPTIONS)
        toolhost_pb2_grpc.add_ToolHostServicer_to_server(self.toolhost, toolhost)
        toolhost.add_insecure_port(f"unix:{self.toolhost_socket}")
        await toolhost.start()
        self._servers.append(toolhost)
        control = grpc.aio.server(options=GRPC_OPTIONS)
        servicer = ControlServicer(
            self.runs, self.isolation.name, self.reload, self.zygote, self.config.root
        )
        servicer.plugin_isolation = (
            confine.isolation() if self.plugins.confine else f"none: {confine.EMBEDDED}"
        )
        servicer.toolhost_target = f"unix:{self.toolhost_socket}"  # for MCP sessions
        control_pb2_grpc.add_ControlServicer_to_server(servicer, control)
        with contextlib.suppress(FileNotFoundError):
            self.control_socket.unlink()
        control.add_insecure_port(f"unix:{self.control_socket}")
        await control.start()
        self.control_socket.chmod(0o600)
        self._servers.append(control)
        if zygote is not None:
            await zygote
        # Last, once everything a run needs is serving.
        self.adopted = self.runs.admit()
        self._heartbeat = asyncio.create_task(Heartbeat(self.runs).run_forever())

    def reload(self, only: Collection[str] | None = None) -> list[str]:
        errors = [str(e) for e in self.registry.reload(only)]
        for error in errors:
            log.warning("%s", error)
        return errors

    async def stop(self, grace: float = 10.0) -> None:
        """Stop everything this host started. Each step runs whatever failed before it, so
        no socket or plugin process outlives a host that met an error."""
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("runs", lambda: self.runs.shutdown(grace)),
            ("heartbeat", self._stop_heartbeat),
            ("servers", lambda: asyncio.gather(*(s.stop(0.5) for s in self._servers))),
            ("plugins", self.plugins.stop),
            ("model API client", self.model_api.close),
        ]
        if self.zygote is not None:
            steps.append(("zygote", self.zygote.stop))
        for what, step in steps:
            try:
                await step()
            except Exception:
                log.exception("stopping the host: %s failed; going on", what)
        if self.cgroups is not None:
            self.cgroups.close()
        self.store.close()
        shutil.rmtree(self.private_dir, ignore_errors=True)
        if self._lock is not None:  # only the daemon holding the lock owns the socket
            with contextlib.suppress(FileNotFoundError):
                self.control_socket.unlink()
            self._lock.close()
            self._lock = None
        # Shared with other hosts of the project: each goes once the last host has left it.
        remove_if_empty(self.config.socket_dir)
        remove_sandbox_base(self.config.state_dir / "runs")

    async def _stop_heartbeat(self) -> None:
        """After the runs (their leases renewed while they finish): the member leaves, and
        its queued runs go back to the shared queue."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        self.node.leave()

    def _take_lock(self) -> None:
        lock = self.config.daemon_lock.open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise HostAlreadyRunning(
                f"a tandem daemon already serves {self.config.state_dir} "
                f"(control socket {self.config.control_socket})"
            ) from None
        self._lock = lock

    async def watch_plugins(self) -> None:
        """Restart a plugin whose files change, start new plugin folders, stop removed ones,
        and restart an MCP server whose config changes (tandem.yaml, .mcp.json); then
        reload the workflows, whose tools may have changed."""
        import watchfiles

        from .mcp.config import MCP_JSON

        folders = [folder for folder in self.config.plugins_dirs if folder.is_dir()]
        root = self.config.root
        configs = {str(root / CONFIG_FILE), str(root / MCP_JSON)}

        def source(change: watchfiles.Change, path: str) -> bool:
            if Path(path).parent == root:  # the project folder: its config files only
                return path in configs
            return "__pycache__" not in path and not path.endswith(".pyc")

        # The project folder itself holds the workflows and the state: watched flat.
        watches = [watchfiles.awatch(root, recursive=False, watch_filter=source, debounce=50)]
        if folders:
            watches.append(watchfiles.awatch(*folders, debounce=50, step=10, watch_filter=source))
        await asyncio.gather(*(self._reload_plugins_on(changes) for changes in watches))

    async def _reload_plugins_on(self, changes: AsyncIterator[object]) -> None:
        async for _ in changes:
            changes_made = await self.plugins.reload()
            for error in self.plugins.errors:
                log.warning("%s", error)
            if changes_made:
                log.info("plugins: %s", ", ".join(changes_made))
            self.reload()  # a server's broken config is an error at its workflows

    async def watch_workflows(self) -> None:
        """Reload the workflows a file change touched (hot reload), within tens of ms."""
        import watchfiles

        root = self.config.workflows_dir
        async for changes in watchfiles.awatch(root, debounce=50, step=10, recursive=True):
            parts = [Path(path).relative_to(root).parts for _, path in changes]
            # A change to the folder itself (made, removed) reloads everything.
            touched = None if any(not p for p in parts) else {p[0] for p in parts}
            errors = self.reload(touched)
            log.info(
                "workflows reloaded (%s)%s",
                ", ".join(sorted(touched)) if touched is not None else "all",
                f" with {len(errors)} error(s)" if errors else "",
            )
