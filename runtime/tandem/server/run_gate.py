"""A run's own door to ToolHost: a unix socket that serves exactly one run.

Each script run gets a socket of its own, reachable only by that run (bound into its
sandbox, or owned by its uid with mode 0600), while the daemon's shared ToolHost socket
stays in a folder no run can enter. The gate forwards calls, as opaque bytes, to the
shared servicer, after three checks of its own:
- the token must name this run, so another run's token, even a valid one, is refused
  here (the servicer still compares the secret, in constant time);
- a request larger than MAX_REQUEST_BYTES is refused with RESOURCE_EXHAUSTED by gRPC;
- at most MAX_CONCURRENT_CALLS calls are in flight; more are RESOURCE_EXHAUSTED at once.

A forwarded call keeps the caller's deadline, or gets the run's time limit when the caller
set none, so a call never waits on the servicer forever.

Forwarding bytes keeps the gate independent of the servicer: the same code paths, scope
checks and trace serve every coordinator.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from tandem_sdk._pb import toolhost_pb2
from tandem_sdk.protocol import GRPC_OPTIONS, MAX_MESSAGE_BYTES

MAX_REQUEST_BYTES = 1024 * 1024
MAX_CONCURRENT_CALLS = 16
_SERVICE = toolhost_pb2.DESCRIPTOR.services_by_name["ToolHost"]

Context = grpc.aio.ServicerContext[bytes, bytes]
Handler = Callable[[bytes, Context], Awaitable[bytes]]


def _options() -> list[tuple[str, int]]:
    options = dict(GRPC_OPTIONS)
    options["grpc.max_receive_message_length"] = MAX_REQUEST_BYTES
    options["grpc.max_send_message_length"] = MAX_MESSAGE_BYTES
    return list(options.items())


def _names_run(metadata: Any, run_id: str) -> bool:
    values = dict(metadata or ())
    scheme, _, token = str(values.get("authorization", "")).partition(" ")
    return scheme.lower() == "bearer" and token.partition(".")[0] == run_id


def _forwarder(channel: grpc.aio.Channel, path: str, run_id: str, timeout_s: float) -> Handler:
    # No (de)serializers: bytes in, bytes out.
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)

    async def forward(request: bytes, context: Context) -> bytes:
        metadata = context.invocation_metadata()
        if not _names_run(metadata, run_id):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "this socket serves another run's token"
            )
        remaining = context.time_remaining()
        timeout = timeout_s if remaining is None else min(remaining, timeout_s)
        try:
            reply: bytes = await call(request, metadata=tuple(metadata or ()), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")
        return reply

    return forward


@contextlib.asynccontextmanager
async def run_gate(
    socket: Path, upstream: Path, run_id: str, timeout_s: float
) -> AsyncIterator[None]:
    """Serve `run_id`'s calls on `socket`, forwarding them to the shared `upstream`, each
    within `timeout_s` at most."""
    channel = grpc.aio.insecure_channel(f"unix:{upstream}", options=GRPC_OPTIONS)
    server = grpc.aio.server(options=_options(), maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _forwarder(channel, f"/{_SERVICE.full_name}/{method.name}", run_id, timeout_s)
        )
        for method in _SERVICE.methods
        if not (method.client_streaming or method.server_streaming)
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers),)
    )
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    try:
        yield
    finally:
        await server.stop(0)
        await channel.close()
