"""A real `tandem serve` in a subprocess, for tests and benchmarks: started on a project,
ready once it logs its control socket, its log kept, stopped as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tandem_sdk._pb import control_pb2

from tandem.client import ControlClient
from tandem.config import load_config
from tandem.store import RunRecord
from tandem.testing.closing import Closing

TANDEM = [sys.executable, "-m", "tandem.cli"]
READY_LINE = "control socket"


class ServedDaemon(Closing):
    def __init__(
        self,
        root: Path,
        *args: str,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ready_within_s: float = 30,
        state_dir: Path | None = None,
    ) -> None:
        """`prefix` goes before the command (a mount namespace, say); under it the daemon
        is the prefix's last exec, so `pid` is the daemon's. `env` adds to this process's
        environment. `state_dir`: its own state folder (daemons sharing one store)."""
        self.root = root
        self.log: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [
                *prefix,
                *TANDEM,
                "--project",
                str(root),
                *(["--state", str(state_dir)] if state_dir else []),
                "serve",
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._ready.wait(ready_within_s) or self.process.poll() is not None:
            self.kill()
            raise RuntimeError("daemon did not become ready:\n" + "\n".join(self.log))
        self.client = ControlClient(load_config(root, state_dir=state_dir).control_socket)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())
            if READY_LINE in line:
                self._ready.set()
        self._ready.set()

    def run(
        self,
        workflow: str,
        payload: Any = None,
        coordinator: str | None = None,
        *,
        dry_run: bool = False,
    ) -> RunRecord:
        """Trigger a run and wait for its end, whatever its status."""
        run_id = self.client.trigger(workflow, payload, coordinator, dry_run=dry_run)
        for _ in self.client.watch(run_id):
            pass
        return self.client.run(run_id)

    def plugins(self) -> dict[str, control_pb2.PluginStatus]:
        """Health's plugin rows (plugin processes and MCP servers), by name."""
        statuses = self.client.stub.Health(control_pb2.HealthRequest()).plugins
        return {status.name: status for status in statuses}

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        if self.process.poll() is None:
            self.terminate()
