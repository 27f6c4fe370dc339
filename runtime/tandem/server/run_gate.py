"""A run's own door to ToolHost: a unix socket that serves exactly one run.

Each script run gets a socket of its own, reachable only by that run (bound into its
sandbox, or owned by its uid with mode 0600), while the daemon's shared ToolHost socket
stays in a folder no run can enter. The run's socket is served by the daemon's one
ToolHost servicer, the very instance behind the shared socket, so scope checks, limits
and the trace take the same code path for every coordinator. Its server adds three
checks of its own:
- the token must name this run, so another run's token, even a valid one, is refused
  before the servicer sees the call (which still compares the secret, in constant time);
- a request larger than MAX_REQUEST_BYTES is refused with RESOURCE_EXHAUSTED by gRPC;
- at most MAX_CONCURRENT_CALLS calls are in flight; more are RESOURCE_EXHAUSTED at once.

Nothing waits on a call's behalf but the servicer: gRPC cancels its work when the
caller's deadline passes, and the server stops, cancelling every call in flight, when
the run ends, so no call outlives its run whatever deadline the caller sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from tandem_sdk._pb import toolhost_pb2_grpc
from tandem_sdk.protocol import GRPC_OPTIONS, MAX_MESSAGE_BYTES

MAX_REQUEST_BYTES = 1024 * 1024
MAX_CONCURRENT_CALLS = 16

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _options() -> list[tuple[str, int]]:
    options = dict(GRPC_OPTIONS)
    options["grpc.max_receive_message_length"] = MAX_REQUEST_BYTES
    options["grpc.max_send_message_length"] = MAX_MESSAGE_BYTES
    return list(options.items())


def _names_run(metadata: Any, run_id: str) -> bool:
    values = dict(metadata or ())
    scheme, _, token = str(values.get("authorization", "")).partition(" ")
    return scheme.lower() == "bearer" and token.partition(".")[0] == run_id


async def _refuse(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "this socket serves another run's token")


# Every ToolHost method is unary; the request stays undecoded, as it is refused unread.
_REFUSED: Handler = grpc.unary_unary_rpc_method_handler(_refuse)


class _OnlyRun(grpc.aio.ServerInterceptor):
    """Hands the servicer only calls whose token names `run_id`."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        if _names_run(handler_call_details.invocation_metadata, self._run_id):
            return await continuation(handler_call_details)
        return _REFUSED


@contextlib.asynccontextmanager
async def run_gate(
    socket: Path, servicer: toolhost_pb2_grpc.ToolHostServicer, run_id: str
) -> AsyncIterator[None]:
    """Serve `run_id`'s calls on `socket` with `servicer` until the block ends, then
    cancel the calls still in flight."""
    server = grpc.aio.server(
        interceptors=(_OnlyRun(run_id),),
        options=_options(),
        maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
    )
    toolhost_pb2_grpc.add_ToolHostServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    try:
        yield
    finally:
        await server.stop(0)
