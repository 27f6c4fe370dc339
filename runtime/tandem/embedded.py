"""A host running in a background thread of this process, for CLI commands when no daemon
is running. The CLI talks to it over its private Control socket, exactly as to a daemon.

Entering it starts a standby process for each plugin it will serve before anything else
(`tandem.plugins.standby`), then imports and builds the rest of the host while they boot:
a few hundred milliseconds of imports in each process, side by side rather than one after
the other."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Collection, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .config import ProjectConfig

if TYPE_CHECKING:
    from .host import Host
    from .plugins import PluginManager
    from .plugins.standby import Standby

T = TypeVar("T")


class EmbeddedHost:
    def __init__(
        self,
        config: ProjectConfig,
        plugins: Collection[str] | None = None,
        *,
        zygote: bool = False,
        skip_llm_shadows: str | None = None,
    ) -> None:
        """`plugins`: start only these (a command about one workflow needs only its own).
        `zygote`: fork runs from a zygote, as a daemon does; a single run is faster without.
        `skip_llm_shadows`: why an llm shadow gets no model here (see RunManager)."""
        self.config = config
        self.only = plugins
        self.zygote = zygote
        self.skip_llm_shadows = skip_llm_shadows
        self._host: Host | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tandem-host", daemon=True
        )

    @property
    def host(self) -> Host:
        assert self._host is not None, "enter the EmbeddedHost first"
        return self._host

    @property
    def control_socket(self) -> Path:
        return self.host.control_socket

    def __enter__(self) -> EmbeddedHost:
        self._thread.start()
        standbys: dict[str, Standby] = {}
        plugins: PluginManager | None = None
        try:
            self.config.ensure_dirs()
            self.config.host_socket_dir.mkdir(mode=0o700, exist_ok=True)
            names = self.only if self.only is not None else _plugin_folders(self.config)
            names = set(names) - _mcp_server_names(self.config)  # no plugin process of theirs
            standbys = self._call(_standbys(names, self.config.state_dir / "plugins"))
            from .plugins import PluginManager  # the heavy imports begin here

            plugins = PluginManager.for_host(self.config, self.only, standbys)
            self._call(self._begin(plugins))
            from .host import Host  # its imports overlap the plugins' start

            self._host = Host(
                self.config,
                daemon=False,
                plugin_manager=plugins,
                zygote=self.zygote,
                skip_llm_shadows=self.skip_llm_shadows,
            )
            self._call(self._host.start())
        except BaseException:
            if self._host is not None:
                self.__exit__(None, None, None)
            else:
                try:
                    if plugins is not None:
                        self._call(plugins.stop())
                    else:
                        self._call(_close(standbys.values()))
                finally:
                    self._finish()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._host is None:
            return
        try:
            if kind is None:  # the shadows of this command's run end first, not cancelled
                self._call(self._host.runs.settle_shadows())
        finally:
            self._stop()

    def _stop(self) -> None:
        assert self._host is not None
        try:
            self._call(self._host.stop(grace=0))
        finally:
            self._finish()

    @staticmethod
    async def _begin(plugins: PluginManager) -> None:
        plugins.begin()  # a task on the host's loop; Host.start waits for it

    def _finish(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coroutine, self._loop
        )
        return future.result()


async def _standbys(names: Collection[str], data: Path) -> dict[str, Standby]:
    """A standby process for each plugin, by name; none if one cannot start (the plugins'
    own start then says why)."""
    from .plugins.standby import Standby

    ordered = sorted(names)
    started = await asyncio.gather(
        *(Standby.start(name, data / name) for name in ordered), return_exceptions=True
    )
    standbys = {n: s for n, s in zip(ordered, started, strict=True) if isinstance(s, Standby)}
    if len(standbys) < len(started):
        await _close(standbys.values())
        return {}
    return standbys


async def _close(standbys: Iterable[Standby]) -> None:
    await asyncio.gather(*(s.close() for s in standbys), return_exceptions=True)


def _mcp_server_names(config: ProjectConfig) -> set[str]:
    from .mcp.config import load_servers  # light: no `mcp` import

    found = load_servers(config.root)
    return set(found.servers) | set(found.errors)


def _plugin_folders(config: ProjectConfig) -> set[str]:
    """The plugins a host that starts them all will find, by folder name (the usual name)."""
    return {
        folder.name
        for root in config.plugins_dirs
        if root.is_dir()
        for folder in root.iterdir()
        if (folder / "plugin.yaml").is_file()
    }
