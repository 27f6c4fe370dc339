"""Starting one process of a plugin: its environment (only its own secrets), its socket,
and the Describe that proves it loaded. Each launch is a `Generation`; a plugin's
supervisor (`process.py`) keeps one serving and replaces it on a crash or a code change."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tandem_sdk._convert import annotations_of
from tandem_sdk.errors import DefinitionError

from tandem.proc import ManagedProcess
from tandem.tools import HostTool

from .link import PluginLink
from .manifest import PluginManifest

log = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0


@dataclass(eq=False)
class Generation:
    """One launch of the plugin process and the link that reaches it."""

    process: ManagedProcess
    link: PluginLink
    socket: Path
    version: str  # the content hash of the plugin's files this process loaded
    tools: list[HostTool] = field(default_factory=list)
    lost: bool = False
    served: bool = False  # answered a call: it was healthy, whatever ends it later
    retired: bool = False  # replaced by newer code: finishes its calls, then stops
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self) -> None:
        self.link.close()  # fails the calls still in flight at once
        await self.process.stop()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def plugin_version(folder: Path) -> str:
    """A hash of the plugin folder's files (caches aside): which code a run called."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


async def launch(manifest: PluginManifest, socket: Path, data_dir: Path) -> Generation:
    """Start the plugin and describe it; DefinitionError, with its stderr, if it cannot load."""
    _prepare(socket, data_dir)
    name = manifest.name

    def log_output(stream: str, chunk: bytes) -> None:
        for line in chunk.decode("utf-8", "replace").splitlines():
            log.info("plugin %s %s: %s", name, stream, line)

    process = ManagedProcess(
        f"plugin {name}",
        _argv(manifest, socket),
        env=_environment(manifest, data_dir),
        cwd=data_dir,
        on_output=log_output,
    )
    version = plugin_version(manifest.folder)
    await process.start()
    generation = Generation(process, PluginLink(socket), socket, version)
    # The link waits for the plugin to bind its socket, which it does once its code loaded.
    describe = asyncio.ensure_future(generation.link.describe(START_TIMEOUT_S))
    exited = asyncio.ensure_future(process.wait())
    try:
        done, _ = await asyncio.wait({describe, exited}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        describe.cancel()
        exited.cancel()
        await generation.close()
        raise
    if exited in done or describe.exception() is not None:
        describe.cancel()
        exited.cancel()
        await generation.close()
        reason = process.stderr_tail.strip() or f"exited with status {process.returncode}"
        reason = reason.removeprefix(f"plugin {name!r}: ")  # the server names it too
        raise DefinitionError(f"plugin {name!r}", reason)
    exited.cancel()
    generation.tools = [
        HostTool.create(
            f"{name}.{t.name}",
            name,
            t.description,
            json.loads(t.input_schema_json),
            annotations_of(t),
            t.dry_run_result_json,
        )
        for t in describe.result().tools
    ]
    return generation


def _prepare(socket: Path, data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        socket.unlink()  # a dead process's
    data_dir.mkdir(parents=True, exist_ok=True)


def _argv(manifest: PluginManifest, socket: Path) -> list[str]:
    return [
        sys.executable,
        "-I",
        "-m",
        "tandem_sdk.plugin_server",
        "--name",
        manifest.name,
        "--version",
        manifest.version,
        "--module",
        str(manifest.module_path),
        "--socket",
        str(socket),
    ]


def _environment(manifest: PluginManifest, data_dir: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(data_dir),
        "TANDEM_PLUGIN_DATA": str(data_dir),
    }
    for secret in manifest.secrets:
        if secret in os.environ:
            env[secret] = os.environ[secret]
    return env
