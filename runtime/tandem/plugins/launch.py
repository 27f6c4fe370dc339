"""Starting one process of a plugin: its environment (only its own secrets), its socket,
and the Describe that proves it loaded. Each launch is a `Generation`; a plugin's
supervisor (`process.py`) keeps one serving and replaces it on a crash or a code change."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tandem_sdk._convert import annotations_of
from tandem_sdk.errors import DefinitionError

from tandem.proc import ManagedProcess, read_pipe
from tandem.tools import HostTool

from .link import PluginLink
from .manifest import PluginManifest
from .standby import Standby, base_environment, log_output

if TYPE_CHECKING:
    from .confine import PluginSandbox

START_TIMEOUT_S = 20.0
EXIT_AFTER_PIPE_S = 1.0
READY = b"ready\n"  # what the plugin server writes on its readiness pipe once it serves


class PluginLoadError(DefinitionError):
    """A plugin process that did not serve. It reads as a workflow's errors do, file first:
    `path/to/plugin.py:LINE: message` when the plugin server placed the error (a syntax
    error, a tool's bad signature, an exception at import), else `path/to/plugin.py:
    message`. `plugin` names it."""

    def __init__(self, manifest: PluginManifest, report: str) -> None:
        if not report.startswith(str(manifest.folder)):
            report = f"{manifest.module_path}: {report}"
        super().__init__(f"plugin {manifest.name!r}", report)
        self.plugin = manifest.name

    def __str__(self) -> str:
        return self.reason


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


async def launch(
    manifest: PluginManifest,
    socket: Path,
    data_dir: Path,
    standby: Standby | None = None,
    sandbox: PluginSandbox | None = None,
    given: Mapping[str, str] | None = None,
) -> Generation:
    """Start the plugin and describe it; PluginLoadError, with its stderr, if it cannot load.

    `standby`, when it was started with this plugin's environment and is still alive, is
    told to load the plugin instead of a new process being started. Readiness is a
    handshake: the server writes `ready` on an inherited pipe once it serves (or exits,
    closing it), and only then is the channel made, so no connection attempt backs off.
    `sandbox`: the plugin's own uid and folders (confine.py), when the host confines it.
    `given`: variables the host sets for it besides its secrets."""
    _prepare(socket, data_dir)
    version = plugin_version(manifest.folder)
    process, ready = await _start(manifest, socket, data_dir, standby, sandbox, given or {})
    timed_out = False
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            served = await _wait_ready(ready, process)
    except TimeoutError:
        served, timed_out = False, True
    except asyncio.CancelledError:
        await _stop(process, socket)
        raise
    if not served:
        await _stop(process, socket)
        reason = _load_error(manifest, process)
        if timed_out:
            reason = f"did not start serving within {START_TIMEOUT_S:g}s: {reason}"
        raise PluginLoadError(manifest, reason)
    generation = Generation(process, PluginLink(socket), socket, version)
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
        raise PluginLoadError(manifest, _load_error(manifest, process))
    exited.cancel()
    try:
        generation.tools = [
            HostTool.create(
                f"{manifest.name}.{t.name}",
                manifest.name,
                t.description,
                json.loads(t.input_schema_json),
                annotations_of(t),
                t.dry_run_result_json,
            )
            for t in describe.result().tools
        ]
    except Exception as error:  # a schema the host cannot check calls against
        await generation.close()
        raise PluginLoadError(manifest, str(error)) from None
    return generation


async def _start(
    manifest: PluginManifest,
    socket: Path,
    data_dir: Path,
    standby: Standby | None,
    sandbox: PluginSandbox | None,
    given: Mapping[str, str],
) -> tuple[ManagedProcess, int]:
    """The process that is to serve, and the read end of its readiness pipe."""
    arguments, secrets = _arguments(manifest, socket), {**_secrets(manifest), **given}
    if standby is not None:
        taken = None
        if standby.fits(manifest.name, data_dir, secrets, sandbox):
            taken = standby.take(arguments, secrets)
        if taken is not None:
            return standby.process, taken
        await standby.close()
    ready, ready_write = os.pipe()
    argv = [sys.executable, "-I", "-m", "tandem_sdk.plugin_server", *arguments]
    argv += ["--ready-fd", str(ready_write)]
    process = ManagedProcess(
        f"plugin {manifest.name}",
        argv if sandbox is None else sandbox.command(argv, data_dir),
        env={**base_environment(data_dir), **secrets},
        cwd=data_dir,
        pass_fds=(ready_write,),
        on_output=log_output(manifest.name),
    )
    try:
        await process.start()
    except BaseException:
        os.close(ready)
        raise
    finally:
        os.close(ready_write)  # the child's copy is the only one: its exit is end of file
    return process, ready


async def _wait_ready(fd: int, process: ManagedProcess) -> bool:
    """True once the server says `ready`; False when it exits (or closes the pipe) first."""
    reader, transport = await read_pipe(fd)
    line = asyncio.ensure_future(reader.readline())
    exited = asyncio.ensure_future(process.wait())
    try:
        done, _ = await asyncio.wait({line, exited}, return_when=asyncio.FIRST_COMPLETED)
        served = line in done and not line.cancelled() and line.result() == READY
        if not served and exited not in done:
            # The pipe closed: the server is gone, and a launcher between (bubblewrap's
            # monitor, confine.py) exits right after it with its status, which says why.
            await asyncio.wait({exited}, timeout=EXIT_AFTER_PIPE_S)
    finally:
        line.cancel()
        exited.cancel()
        transport.close()
    return served


async def _stop(process: ManagedProcess, socket: Path) -> None:
    await process.stop()
    _unlink(socket)


def _load_error(manifest: PluginManifest, process: ManagedProcess) -> str:
    """Why a stopped process did not serve: its stderr (whose last line is the server's
    report, `path:LINE: message`), else its exit status."""
    lines = process.stderr_tail.strip().splitlines()
    placed = [i for i, line in enumerate(lines) if line.startswith(str(manifest.folder))]
    if placed:  # what the plugin printed before it is in the daemon's log
        lines = lines[placed[-1] :]
    return "\n".join(lines) or f"exited with status {process.returncode}"


def _prepare(socket: Path, data_dir: Path) -> None:
    _unlink(socket)  # a dead process's
    data_dir.mkdir(parents=True, exist_ok=True)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _arguments(manifest: PluginManifest, socket: Path) -> list[str]:
    """The plugin server's arguments (`python -m tandem_sdk.plugin_server ARGUMENTS`)."""
    return [
        "--name",
        manifest.name,
        "--version",
        manifest.version,
        "--module",
        str(manifest.module_path),
        "--socket",
        str(socket),
    ]


def _secrets(manifest: PluginManifest) -> dict[str, str]:
    """The daemon's values of the variables the manifest names: all a plugin sees of it."""
    return {name: os.environ[name] for name in manifest.secrets if name in os.environ}


MIN_NONCE_BYTES = 16


def environment_digests(manifest: PluginManifest, nonce: bytes) -> dict[str, str]:
    """Each variable the manifest names -> HMAC-SHA256 under `nonce` of the value the
    plugin gets from the daemon, "" when it gets none: a client compares its own values
    without a value leaving either process. Empty for a nonce too short to key it."""
    if len(nonce) < MIN_NONCE_BYTES:
        return {}
    given = _secrets(manifest)
    return {
        name: hmac.new(nonce, given[name].encode(), hashlib.sha256).hexdigest()
        if name in given
        else ""
        for name in manifest.secrets
    }
