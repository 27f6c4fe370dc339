"""All plugin processes of a host, and the catalog of the tools they provide."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tandem_sdk.errors import DefinitionError, NotFound

from tandem.tools import HostTool

from .launch import plugin_version
from .manifest import PluginManifest, find_plugins
from .process import PluginProcess
from .standby import Standby

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


class PluginManager:
    def __init__(
        self,
        folders: list[Path],
        socket_dir: Path,
        data_dir: Path,
        *,
        only: Collection[str] | None = None,
        standbys: Mapping[str, Standby] | None = None,
        confine: bool = False,
    ) -> None:
        """`standbys`: processes started ahead for plugins by name, to take their first
        start (an embedded host starts them before its own imports). `confine`: each
        plugin as a uid of its own where the host can (a daemon's; confine.py)."""
        self.folders = folders
        self.only = only  # start just these plugins (a host embedded for one workflow)
        self.socket_dir = socket_dir
        self.data_dir = data_dir
        self.plugins: dict[str, PluginProcess] = {}
        self.errors: list[DefinitionError] = []
        self.broken: dict[str, str] = {}  # plugin name -> why it failed to load
        self._starting: asyncio.Future[None] | None = None
        self._standbys = dict(standbys or {})
        self.confine = confine

    @classmethod
    def for_host(
        cls,
        config: ProjectConfig,
        only: Collection[str] | None = None,
        standbys: Mapping[str, Standby] | None = None,
        confine: bool = False,
    ) -> PluginManager:
        """A host's plugins, with their sockets in the host's own folder."""
        return cls(
            config.plugins_dirs,
            config.host_socket_dir,
            config.state_dir / "plugins",
            only=only,
            standbys=standbys,
            confine=confine,
        )

    def begin(self) -> asyncio.Future[None]:
        """Start the plugins' processes now, and return what `start` waits for: their boot
        takes long enough to do other work meanwhile. Called again, the same future."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        return self._starting

    async def start(self) -> None:
        """Start every plugin found; a plugin that fails to load is reported, not fatal."""
        await self.begin()

    async def _start(self) -> None:
        manifests, self.errors = find_plugins(self.folders)
        if self.only is not None:
            manifests = [m for m in manifests if m.name in self.only]
        candidates = [self._process_for(m, self._standbys.pop(m.name, None)) for m in manifests]
        await self._close_standbys()  # for folders that hold no such plugin after all
        try:
            results = await asyncio.gather(*(p.start() for p in candidates), return_exceptions=True)
        except BaseException:  # cancelled (the host stops as it starts): leave no process
            await asyncio.gather(*(p.stop() for p in candidates), return_exceptions=True)
            raise
        for plugin, result in zip(candidates, results, strict=True):
            if isinstance(result, DefinitionError):
                self.errors.append(result)
                self.broken[plugin.name] = str(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                self.plugins[plugin.name] = plugin

    async def reload(self) -> list[str]:
        """Pick up plugin changes: start new plugins, stop removed ones, and move changed
        ones to their new code (the old process serves on when the new code fails to load,
        and the error is kept in `errors`). Returns what changed, in words."""
        manifests, errors = find_plugins(self.folders)
        broken: dict[str, str] = {}
        changes: list[str] = []
        for manifest in manifests:
            plugin = self.plugins.get(manifest.name)
            if plugin is None:
                fresh = self._process_for(manifest)
                try:
                    await fresh.start()
                except DefinitionError as error:
                    errors.append(error)
                    broken[manifest.name] = str(error)
                    continue
                self.plugins[manifest.name] = fresh
                changes.append(f"started {manifest.name}")
            elif manifest != plugin.manifest or plugin_version(manifest.folder) != plugin.version:
                problem = await plugin.reload(manifest)
                if problem is not None:
                    errors.append(problem)
                else:
                    changes.append(f"reloaded {manifest.name}")
        for name in set(self.plugins) - {m.name for m in manifests}:
            await self.plugins.pop(name).stop()
            changes.append(f"removed {name}")
        self.errors, self.broken = errors, broken
        return changes

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # a plugin still starting stops its process itself
            await asyncio.gather(self._starting, return_exceptions=True)
        await asyncio.gather(*(p.stop() for p in self.plugins.values()), return_exceptions=True)
        await self._close_standbys()

    async def _close_standbys(self) -> None:
        standbys, self._standbys = list(self._standbys.values()), {}
        await asyncio.gather(*(s.close() for s in standbys), return_exceptions=True)

    def version_of(self, name: str) -> str | None:
        """The content hash of the code plugin `name` serves now."""
        plugin = self.plugins.get(name)
        return plugin.version if plugin else None

    def tool_names(self) -> set[str]:
        return {tool.name for plugin in self.plugins.values() for tool in plugin.tools}

    def tools(self) -> list[HostTool]:
        return [tool for plugin in self.plugins.values() for tool in plugin.tools]

    def resolve(self, name: str) -> tuple[HostTool, PluginProcess]:
        plugin_name, _, _ = name.partition(".")
        plugin = self.plugins.get(plugin_name)
        if plugin is not None:
            for tool in plugin.tools:
                if tool.name == name:
                    return tool, plugin
        raise NotFound(f"no plugin provides a tool named {name!r}", tool=name)

    def _process_for(
        self, manifest: PluginManifest, standby: Standby | None = None
    ) -> PluginProcess:
        return PluginProcess(
            manifest, self.socket_dir, self.data_dir / manifest.name, standby, self.confine
        )
