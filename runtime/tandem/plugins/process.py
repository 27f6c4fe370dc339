"""One plugin subprocess: started, described, supervised and restarted with backoff.

Calls in flight when the process dies fail with ToolUnavailable at once (closing the
channel cancels them); calls that arrive while it restarts wait for it, bounded by their
own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import grpc
from tandem_sdk._pb import plugin_pb2, plugin_pb2_grpc
from tandem_sdk.errors import DefinitionError, NotFound, ToolError, ToolTimeout, ToolUnavailable
from tandem_sdk.protocol import GRPC_OPTIONS

from tandem.proc import ManagedProcess
from tandem.tools import HostTool

from .manifest import PluginManifest

log = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 10.0
# A process that stayed up this long is healthy again: its next crash restarts quickly.
STABLE_AFTER_S = 30.0


class PluginProcess:
    def __init__(self, manifest: PluginManifest, socket_dir: Path, data_dir: Path) -> None:
        self.manifest = manifest
        self.name = manifest.name
        self.socket_path = socket_dir / f"plugin-{manifest.name}.sock"
        self.data_dir = data_dir
        self.tools: list[HostTool] = []
        self.restarts = 0
        self.last_error: str | None = None
        self._process: ManagedProcess | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: plugin_pb2_grpc.PluginAsyncStub | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self._ready.is_set()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Start and describe the plugin; DefinitionError if it cannot load."""
        await self._launch()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"plugin-{self.name}")

    async def invoke(self, tool: str, arguments_json: str, run_id: str, workflow: str) -> str:
        """Run `tool`; returns the result JSON, raises ToolError or an InterfaceError."""
        full_name = f"{self.name}.{tool}"
        timeout = self.manifest.call_timeout_s
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise ToolUnavailable(
                f"plugin {self.name!r} is down: {self.last_error}", tool=full_name
            ) from None
        stub = self._stub
        assert stub is not None
        request = plugin_pb2.InvokeRequest(
            tool=tool,
            arguments_json=arguments_json,
            run=plugin_pb2.RunContext(run_id=run_id, workflow=workflow),
        )
        try:
            reply = await stub.Invoke(request, timeout=max(deadline - time.monotonic(), 0.001))
        except grpc.aio.AioRpcError as error:
            raise self._call_error(error, full_name, timeout) from None
        if reply.is_error:
            raise ToolError(
                reply.error.message,
                tool=full_name,
                type=reply.error.type,
                retryable=reply.error.retryable,
            )
        return reply.result_json or "null"

    def _call_error(self, error: grpc.aio.AioRpcError, tool: str, timeout: float) -> Exception:
        code = error.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ToolTimeout(
                f"{tool}: plugin {self.name!r} did not answer within {timeout:g}s", tool=tool
            )
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(error.details() or f"unknown tool {tool}", tool=tool)
        return ToolUnavailable(
            f"{tool}: plugin {self.name!r} is unavailable ({code.name}: {error.details()})",
            tool=tool,
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._teardown()

    async def _launch(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest
        argv = [
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
            str(self.socket_path),
        ]
        process = ManagedProcess(
            f"plugin {self.name}",
            argv,
            env=self._environment(),
            cwd=self.data_dir,
            on_output=self._log_output,
        )
        await process.start()
        self._process = process
        self._channel = grpc.aio.insecure_channel(f"unix:{self.socket_path}", options=GRPC_OPTIONS)
        self._stub = plugin_pb2_grpc.PluginStub(self._channel)
        describe = asyncio.ensure_future(
            self._stub.Describe(
                plugin_pb2.DescribeRequest(), wait_for_ready=True, timeout=START_TIMEOUT_S
            )
        )
        exited = asyncio.ensure_future(process.wait())
        done, _ = await asyncio.wait({describe, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done or describe.exception() is not None:
            describe.cancel()
            exited.cancel()
            await self._teardown()
            reason = process.stderr_tail.strip() or f"exited with status {process.returncode}"
            raise DefinitionError(f"plugin {self.name!r}", reason)
        exited.cancel()
        reply = describe.result()
        self.tools = [
            HostTool.create(
                f"{self.name}.{t.name}",
                self.name,
                t.description,
                json.loads(t.input_schema_json),
                t.side_effects,
            )
            for t in reply.tools
        ]
        self.last_error = None
        self._ready.set()

    async def _supervise(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stopping:
            assert self._process is not None
            started = time.monotonic()
            code = await self._process.wait()
            self._ready.clear()
            self.last_error = (
                f"exited with status {code}: {self._process.stderr_tail.strip()[-500:]}"
            )
            log.warning("plugin %s %s; restarting", self.name, self.last_error)
            await self._teardown()
            if time.monotonic() - started > STABLE_AFTER_S:
                backoff = BACKOFF_MIN_S
            while not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                try:
                    await self._launch()
                except DefinitionError as error:
                    self.last_error = str(error)
                    log.warning("plugin %s failed to restart: %s", self.name, error)
                    continue
                self.restarts += 1
                break

    async def _teardown(self) -> None:
        self._ready.clear()
        if self._channel is not None:
            await self._channel.close()  # fails the calls in flight at once
            self._channel = None
        if self._process is not None:
            await self._process.stop()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _environment(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.data_dir),
            "TANDEM_PLUGIN_DATA": str(self.data_dir),
        }
        for name in self.manifest.secrets:
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def _log_output(self, stream: str, chunk: bytes) -> None:
        for line in chunk.decode("utf-8", "replace").splitlines():
            log.info("plugin %s %s: %s", self.name, stream, line)
