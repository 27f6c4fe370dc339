"""All tool providers of a host, and the catalog of the tools they provide: the plugin
processes of its plugin folders, and the MCP servers its config names (started through
`tandem.mcp`, imported only when there are some)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tandem_sdk.errors import DefinitionError, NotFound

from tandem.config import builtin_plugins_dir
from tandem.mcp.config import ServerConfig, ServerConfigError, load_servers
from tandem.tools import HostTool

from .launch import plugin_version
from .manifest import PluginManifest, find_plugins
from .process import PluginProcess
from .provider import ToolProvider
from .standby import Standby

# The run store's PostgreSQL URL, as the built-in state plugin reads it (plugins/state).
STATE_DATABASE_URL = "STATE_DATABASE_URL"

if TYPE_CHECKING:
    from tandem.config import ProjectConfig
    from tandem.mcp.provider import McpServer


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
        project_root: Path | None = None,
        given: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """`project_root`: where tandem.yaml and .mcp.json name the MCP servers.
        `standbys`: processes started ahead for plugins by name, to take their first
        start (an embedded host starts them before its own imports). `confine`: each
        plugin as a uid of its own where the host can (a daemon's; confine.py). `given`:
        variables the host gives a plugin that ships with Tandem, by name, besides its
        secrets (the state plugin's shared database)."""
        self.folders = folders
        self.only = only  # start just these plugins (a host embedded for one workflow)
        self.socket_dir = socket_dir
        self.data_dir = data_dir
        self.project_root = project_root
        self.plugins: dict[str, ToolProvider] = {}  # plugin processes and MCP servers
        self.errors: list[DefinitionError] = []
        self.broken: dict[str, str] = {}  # plugin name -> why it failed to load
        self._starting: asyncio.Future[None] | None = None
        self._standbys = dict(standbys or {})
        self._reloading = asyncio.Lock()
        self._unreadable: dict[str, str] = {}  # an MCP config file that does not read -> why
        self.mcp_names: set[str] = set()  # the MCP servers the config names, loaded or not
        self.confine = confine
        self.given = dict(given or {})

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
            project_root=config.root,
            # The state plugin keeps its data where the runs are when that is PostgreSQL,
            # so every daemon sharing the store shares the state.
            given={"state": {STATE_DATABASE_URL: config.store_url}} if config.store_url else None,
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
        servers = self._mcp_configs({m.name for m in manifests})
        if self.only is not None:
            manifests = [m for m in manifests if m.name in self.only]
            servers = [s for s in servers if s.name in self.only]
        candidates: list[ToolProvider] = [
            self._process_for(m, self._standbys.pop(m.name, None)) for m in manifests
        ]
        candidates += self._mcp_servers(servers)
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
                self._note_tool_errors(plugin)

    async def reload(self) -> list[str]:
        """Pick up plugin changes: start new plugins, stop removed ones, and move changed
        ones to their new code (the old process serves on when the new code fails to load,
        and the error is kept in `errors`). Returns what changed, in words. One reload at a
        time: two watchers (plugin folders, MCP config files) may see one change together,
        and each would start the same new server."""
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> list[str]:
        manifests, errors = find_plugins(self.folders)
        broken: dict[str, str] = {}
        changes: list[str] = []
        for manifest in manifests:
            plugin = self.plugins.get(manifest.name)
            if plugin is not None and not isinstance(plugin, PluginProcess):
                continue  # a clash the MCP server's config reports
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
        processes = {n for n, p in self.plugins.items() if isinstance(p, PluginProcess)}
        for name in processes - {m.name for m in manifests}:
            await self.plugins.pop(name).stop()
            changes.append(f"removed {name}")
        self.errors, self.broken = errors, broken
        await self._reload_mcp({m.name for m in manifests}, changes)
        return changes

    # -- MCP servers ------------------------------------------------------------------------

    def _mcp_configs(self, plugin_names: set[str]) -> list[ServerConfig]:
        """The project's MCP servers; each that cannot load goes to `errors` and `broken`."""
        if self.project_root is None:
            return []
        found = load_servers(self.project_root)
        self.errors.extend(found.file_errors)
        self._unreadable = {error.where: str(error) for error in found.file_errors}
        self.mcp_names = set(found.servers) | set(found.errors)
        for name, error in found.errors.items():
            if self.only is None or name in self.only:
                self.errors.append(error)
                self.broken[name] = error.reason
        servers = []
        for name, config in found.servers.items():
            if name in plugin_names:
                clash = ServerConfigError(
                    config.source, name, f"a plugin is named {name!r} too: rename the server"
                )
                self.errors.append(clash)
                self.broken[name] = clash.reason
            else:
                servers.append(config)
        return servers

    def _mcp_servers(self, configs: list[ServerConfig]) -> list[McpServer]:
        if not configs:
            return []
        from tandem.mcp.provider import McpServer  # the `mcp` package, only when needed

        return [McpServer(config) for config in configs]

    def _note_tool_errors(self, provider: ToolProvider) -> None:
        for problem in getattr(provider, "tool_errors", []):
            self.errors.append(DefinitionError(f"mcp server {provider.name!r}", problem))

    async def _reload_mcp(self, plugin_names: set[str], changes: list[str]) -> None:
        """Start new servers, restart those whose config changed, stop removed ones."""
        configs = {c.name: c for c in self._mcp_configs(plugin_names)}
        if self.only is not None:
            configs = {n: c for n, c in configs.items() if n in self.only}
        running = {n: p for n, p in self.plugins.items() if not isinstance(p, PluginProcess)}
        for fresh in self._mcp_servers([c for n, c in configs.items() if n not in running]):
            try:
                await fresh.start()
            except DefinitionError as error:
                self.errors.append(error)
                self.broken[fresh.name] = str(error)
                continue
            self.plugins[fresh.name] = fresh
            changes.append(f"started mcp server {fresh.name}")
        for name, server in running.items():
            from tandem.mcp.provider import McpServer  # imported when one runs

            config = configs.get(name)
            assert isinstance(server, McpServer)
            # Its file does not read: it serves on as that file last gave it, never as the
            # other file's entry of its name gives it (which may lack the operator's hints).
            unreadable = self._unreadable.get(server.config.source)
            if unreadable:
                server.load_error = unreadable
                continue
            why = self.broken.get(name)  # a broken entry: the running server serves on
            if config is None and why:
                server.load_error = why
                continue
            if config is None:
                await self.plugins.pop(name).stop()
                changes.append(f"removed mcp server {name}")
                continue
            if config == server.config:
                server.load_error = None  # an edit undone: nothing left to report
            else:
                problem = await server.reload(config)
                if problem is not None:
                    self.errors.append(problem)
                else:
                    changes.append(f"restarted mcp server {name}")
        for provider in self.plugins.values():
            self._note_tool_errors(provider)

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

    def resolve(self, name: str) -> tuple[HostTool, ToolProvider]:
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
        builtin = manifest.folder.resolve().parent == builtin_plugins_dir().resolve()
        return PluginProcess(
            manifest,
            self.socket_dir,
            self.data_dir / manifest.name,
            standby,
            self.confine,
            given=self.given.get(manifest.name, {}) if builtin else {},
        )
