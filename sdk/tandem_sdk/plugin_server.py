"""`python -m tandem_sdk.plugin_server`: serve one plugin's tools to the host, over the
link of proto/tandem/v1/plugin.proto (frames on a unix socket; a thread per connection,
and the host opens one connection per call it has in flight).

The host starts it as a subprocess with only the plugin's own secrets in its environment:

    python -m tandem_sdk.plugin_server --name state --version 0.1.0 \\
        --module plugins/state/plugin.py --socket /run/.../plugin-state.sock

A module that fails to import, or a tool with a bad signature, exits with status 3 and
the reason on stderr, `path/to/plugin.py:LINE: message` (load_errors.py), which the host
reports as the plugin's load error. With
`--ready-fd N` it writes `ready` on that inherited pipe once it serves, so the host connects
at once instead of polling the socket.
"""

from __future__ import annotations

import argparse
import gc
import importlib.machinery
import importlib.util
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import CodeType, FrameType, ModuleType
from typing import Any

import pydantic

from ._convert import annotations_pb
from ._lifetime import die_with_parent, watch_parent
from ._pb import common_pb2, plugin_pb2
from .errors import DefinitionError, ToolError
from .load_errors import defined_at, load_report
from .plugin import RunContext, ToolDefinition, define_tool, is_tool, schema_json
from .protocol import FRAME_HEADER

EXIT_LOAD_ERROR = 3
# On SIGTERM, how long the calls in flight may take to finish.
STOP_GRACE_S = 1.0
_READ_SIZE = 256 * 1024


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles a plugin's modules from their source every time. The bytecode cache judges
    a source unchanged by its size and its modification time in whole seconds: a save
    within a second of the last, of the same size, would run the old code."""

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.get_data(self.path), self.path)


def load_module(plugin: str, path: Path) -> ModuleType:
    folder = str(path.parent)
    sys.path.insert(0, folder)
    # The plugin's own folder (its module and the helpers beside it) is read from source.
    sys.path_importer_cache[folder] = importlib.machinery.FileFinder(
        folder,
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (_SourceLoader, importlib.machinery.SOURCE_SUFFIXES),
    )
    name = f"tandem_plugin_{plugin}"
    spec = importlib.util.spec_from_file_location(name, path, loader=_SourceLoader(name, str(path)))
    if spec is None or spec.loader is None:
        raise DefinitionError(str(path), "cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collect_tools(plugin: str, module: ModuleType) -> dict[str, ToolDefinition]:
    """The module's @tool functions; DefinitionError at the `def` of the first bad one."""
    tools: dict[str, ToolDefinition] = {}
    for value in vars(module).values():
        if is_tool(value):
            try:
                definition = define_tool(plugin, value)
            except DefinitionError as error:
                where = f"function {value.__name__!r}"
                raise DefinitionError(defined_at(value), f"{where}: {error.reason}") from error
            if definition.name in tools:
                raise DefinitionError(defined_at(value), f"a second tool named {definition.name!r}")
            tools[definition.name] = definition
    if not tools:
        raise DefinitionError(str(module.__file__), "defines no @tool function")
    return tools


class PluginServicer:
    """Answers the host's requests (proto/tandem/v1/plugin.proto), one frame at a time."""

    def __init__(self, name: str, version: str, tools: dict[str, ToolDefinition]) -> None:
        self._name = name
        self._version = version
        self._tools = tools

    def handle(self, data: bytes) -> bytes:
        """One request frame's body in, one reply frame (header included) out."""
        try:
            request = plugin_pb2.PluginRequest.FromString(data)
            call = request.WhichOneof("call")
            if call == "invoke":
                reply = self.Invoke(request.invoke)
            elif call == "describe":
                reply = plugin_pb2.PluginReply(describe=self.Describe())
            else:
                reply = _failure("internal", f"unknown request {call!r}")
        except Exception as error:  # the server's own failure, not a tool's
            reply = _failure("internal", f"{type(error).__name__}: {error}")
        body = reply.SerializeToString()
        return FRAME_HEADER.pack(len(body)) + body

    def Describe(self) -> plugin_pb2.DescribeResponse:
        return plugin_pb2.DescribeResponse(
            name=self._name,
            version=self._version,
            tools=[
                common_pb2.ToolSpec(
                    name=t.name,
                    description=t.description,
                    input_schema_json=schema_json(t),
                    side_effects=t.side_effects,
                    annotations=annotations_pb(t.annotations),
                    dry_run_result_json=t.dry_run_result_json,
                )
                for t in self._tools.values()
            ],
        )

    def Invoke(self, request: plugin_pb2.InvokeRequest) -> plugin_pb2.PluginReply:
        definition = self._tools.get(request.tool)
        if definition is None:
            return _failure("not_found", f"plugin {self._name!r} has no tool {request.tool!r}")
        run = RunContext(
            run_id=request.run.run_id,
            workflow=request.run.workflow,
            deadline_unix=request.run.deadline_unix,
        )
        try:
            result = definition.invoke(request.arguments_json, run)
        except pydantic.ValidationError as error:
            return _error_response("InvalidArguments", str(error), retryable=False)
        except ToolError as error:  # the plugin named the failure itself
            return _error_response(error.type, error.reason, error.retryable)
        except Exception as error:
            return _error_response(
                type(error).__name__, str(error), getattr(error, "retryable", False)
            )
        return plugin_pb2.PluginReply(
            invoke=plugin_pb2.InvokeResponse(result_json=json.dumps(result))
        )


def _error_response(kind: str, message: str, retryable: Any) -> plugin_pb2.PluginReply:
    error = common_pb2.ToolError(message=message, type=kind, retryable=bool(retryable))
    return plugin_pb2.PluginReply(invoke=plugin_pb2.InvokeResponse(is_error=True, error=error))


def _failure(code: str, message: str) -> plugin_pb2.PluginReply:
    return plugin_pb2.PluginReply(failure=plugin_pb2.PluginFailure(code=code, message=message))


class _Calls:
    """The calls being served, so a stopping server can let them finish."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self._count += 1

    def __exit__(self, *_: object) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._count == 0, timeout)


def _read_frame(connection: socket.socket, buffer: bytearray) -> bytes | None:
    """The next frame's body; None when the host closed the connection."""
    while True:
        if len(buffer) >= FRAME_HEADER.size:
            end = FRAME_HEADER.size + FRAME_HEADER.unpack_from(buffer)[0]
            if len(buffer) >= end:
                body = bytes(buffer[FRAME_HEADER.size : end])
                del buffer[:end]
                return body
        chunk = connection.recv(_READ_SIZE)
        if not chunk:
            return None
        buffer += chunk


def _serve_connection(connection: socket.socket, servicer: PluginServicer, calls: _Calls) -> None:
    """Answer one connection's requests in turn, until the host closes it."""
    buffer = bytearray()
    with connection:
        try:
            while (data := _read_frame(connection, buffer)) is not None:
                with calls:
                    reply = servicer.handle(data)
                connection.sendall(reply)
        except OSError:
            return  # the host dropped the connection (it gave up on the call)


def _accept(listener: socket.socket, servicer: PluginServicer, calls: _Calls) -> None:
    """A thread per connection: the host opens one per call it has in flight."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return  # the listener was shut down
        threading.Thread(
            target=_serve_connection, args=(connection, servicer, calls), daemon=True
        ).start()


def _signal_ready(fd: int) -> None:
    try:
        os.write(fd, b"ready\n")
    except OSError:
        pass  # the host stopped waiting; it will see the process anyway
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tandem_sdk.plugin_server")
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", default="0")
    parser.add_argument("--module", required=True, type=Path)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--ready-fd", type=int, help="write 'ready' on this pipe once serving")
    args = parser.parse_args(argv)
    die_with_parent()  # a daemon killed by SIGKILL leaves no plugin behind
    watch_parent()  # and when that signal cannot reach it (a plugin's own uid)
    try:
        tools = collect_tools(args.name, load_module(args.name, args.module))
    except Exception as error:
        print(load_report(args.module, error), file=sys.stderr)
        return EXIT_LOAD_ERROR
    # What loading made (modules, schemas) lives as long as the process: keep the collector
    # off it, and a stop takes milliseconds instead of a 100 ms sweep of it at exit.
    gc.freeze()

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    listener.listen(64)
    calls = _Calls()
    servicer = PluginServicer(args.name, args.version, tools)
    threading.Thread(target=_accept, args=(listener, servicer, calls), daemon=True).start()
    if args.ready_fd is not None:
        _signal_ready(args.ready_fd)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopping.wait()
    listener.shutdown(socket.SHUT_RDWR)  # no new connections; wakes the accepting thread
    calls.wait_idle(STOP_GRACE_S)  # the calls in flight may finish
    return 0


if __name__ == "__main__":
    sys.exit(main())
