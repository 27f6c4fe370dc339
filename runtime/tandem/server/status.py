"""The host's one place that turns exceptions into gRPC statuses. Servicer methods raise;
these wrappers answer. The SDK holds the inverse table (`tandem_sdk._status`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from tandem_sdk._status import SUBAGENT_FAILED, status_for
from tandem_sdk.errors import DefinitionError, InterfaceError, ProtocolMismatch, SubagentError

from tandem.cluster.commands import AnswerLate, NoAnswer
from tandem.runs import ShuttingDown
from tandem.store import StoreError

log = logging.getLogger(__name__)
# The errors that become a status; anything else is a host bug, answered INTERNAL.
_ANSWERED = (
    InterfaceError,
    ProtocolMismatch,
    DefinitionError,
    SubagentError,
    ShuttingDown,
    NoAnswer,
    AnswerLate,
    StoreError,
)
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def abort_for(error: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
    if isinstance(error, InterfaceError):
        await context.abort(status_for(error), error.message)
    if isinstance(error, ProtocolMismatch):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, error.message)
    if isinstance(error, DefinitionError):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
    if isinstance(error, SubagentError):
        await context.abort(SUBAGENT_FAILED, error.message)
    if isinstance(error, ShuttingDown | NoAnswer):
        await context.abort(grpc.StatusCode.UNAVAILABLE, error.message)
    if isinstance(error, AnswerLate):  # taken by the daemon executing the run: maybe done
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, error.message)
    if isinstance(error, StoreError):
        log.error("%s", error.message)
        # A database that cannot be reached may come back; a full disk wants a person.
        code = (
            grpc.StatusCode.UNAVAILABLE if error.unavailable else grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        await context.abort(code, error.message)
    log.exception("internal error in a gRPC method", exc_info=error)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}: {error}"
    )


def unary(
    method: Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await method(self, request, context)
        except _ANSWERED as error:
            await abort_for(error, context)

    return wrapper


def streaming(
    method: Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]:
    @functools.wraps(method)
    async def wrapper(
        self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except _ANSWERED as error:
            await abort_for(error, context)

    return wrapper
