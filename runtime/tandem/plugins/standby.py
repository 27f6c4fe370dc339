"""Plugin processes started ahead of need (`python -m tandem_sdk.plugin_standby`).

A standby pays for what every plugin server pays before it can load a plugin (the
interpreter, gRPC, pydantic, deriving a first schema: most of a start), then waits on a
pipe. `launch` hands it the plugin server's arguments and the plugin's secrets, which it
puts in its environment before it imports the plugin's module; the plugin sees exactly
the environment a process of its own would have had. A standby is started for one plugin
(its name fixes its data folder and HOME) with no secret at all, in the plugins' common
folder; it moves to its data folder, made then, when it is taken.

Two users: the daemon keeps one beside a plugin whose code has changed, for its next
change (hot reload); a host embedded in the CLI starts its plugins' standbys before it
imports anything heavy, so their start overlaps its own.

This module stays light (no gRPC, no pydantic): the CLI imports it first thing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tandem.proc import ManagedProcess

if TYPE_CHECKING:
    from .confine import PluginSandbox

log = logging.getLogger("tandem.plugins")  # what plugin processes print

# Variables read as a process starts (by the dynamic loader, the interpreter, gRPC's core
# or the SDK as they are imported): a plugin given one of these as a secret gets a process
# started with it.
_READ_AT_START = ("LD_", "PYTHON", "GRPC_", "TANDEM_")


def base_environment(data_dir: Path) -> dict[str, str]:
    """What every plugin process gets, before its own secrets."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(data_dir),
        "TANDEM_PLUGIN_DATA": str(data_dir),
    }


def log_output(name: str) -> Callable[[str, bytes], None]:
    def log_lines(stream: str, chunk: bytes) -> None:
        for line in chunk.decode("utf-8", "replace").splitlines():
            log.info("plugin %s %s: %s", name, stream, line)

    return log_lines


@dataclass(eq=False)
class Standby:
    """One standby process of the plugin `name`; `take` it or `close` it."""

    name: str
    data_dir: Path
    process: ManagedProcess
    start_fd: int  # the write end of the pipe it reads its start from
    ready_fd: int  # the read end of its readiness pipe
    child_ready_fd: int  # that pipe's write end, as the standby process numbers it
    sandbox: PluginSandbox | None = None  # the plugin's uid and folders, when confined

    @classmethod
    async def start(
        cls, name: str, data_dir: Path, sandbox: PluginSandbox | None = None
    ) -> Standby:
        _make(data_dir.parent)  # its own is made when a plugin starts, as for any process
        start_read, start_write = os.pipe()
        ready_read, ready_write = os.pipe()
        argv = [sys.executable, "-I", "-m", "tandem_sdk.plugin_standby"]
        argv += ["--start-fd", str(start_read)]
        process = ManagedProcess(
            f"plugin {name}",  # the process that will serve it
            argv if sandbox is None else sandbox.command(argv, data_dir.parent),
            env=base_environment(data_dir),
            cwd=data_dir.parent,
            pass_fds=(start_read, ready_write),
            on_output=log_output(name),
        )
        try:
            await process.start()
        except BaseException:
            for fd in (start_write, ready_read):
                os.close(fd)
            raise
        finally:
            for fd in (start_read, ready_write):
                os.close(fd)
        return cls(name, data_dir, process, start_write, ready_read, ready_write, sandbox)

    def fits(
        self,
        name: str,
        data_dir: Path,
        secrets: Mapping[str, str],
        sandbox: PluginSandbox | None = None,
    ) -> bool:
        """Alive, started for this plugin (as its uid), and its secrets can be given after
        the start."""
        return (
            self.start_fd >= 0
            and self.process.returncode is None
            and (self.name, self.data_dir, self.sandbox) == (name, data_dir, sandbox)
            and not any(secret.startswith(_READ_AT_START) for secret in secrets)
        )

    def take(self, arguments: list[str], secrets: Mapping[str, str]) -> int | None:
        """Send the plugin server's arguments and the plugin's secrets. Returns the read end
        of the readiness pipe (the caller's to close from now on), or None if the standby
        is gone."""
        start = {
            "argv": [*arguments, "--ready-fd", str(self.child_ready_fd)],
            "env": {**secrets},
            "cwd": str(self.data_dir),
        }
        message = json.dumps(start).encode() + b"\n"
        try:
            os.set_blocking(self.start_fd, False)  # never wait on a standby that is not reading
            sent = os.write(self.start_fd, message)
        except OSError:
            sent = 0
        finally:
            self._close_start()
        if sent != len(message):  # gone, or a start too large for the pipe: it exits unready
            return None
        ready, self.ready_fd = self.ready_fd, -1
        return ready

    async def close(self) -> None:
        """Stop a standby nobody took (end of file on its start pipe, then the signals)."""
        self._close_start()
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1
        await self.process.stop()

    def _close_start(self) -> None:
        if self.start_fd >= 0:
            os.close(self.start_fd)
            self.start_fd = -1


def _make(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
