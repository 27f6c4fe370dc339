"""The subagent: a script asks the model for help, as a child of its run.

It runs the same loop as the LLM coordinator, through a ToolHost client holding the parent
run's token: its tool calls are the run's (same scope, same limits, same trace), its
tokens count on the run. It may be offered a subset of the run's tools, never more.
"""

from __future__ import annotations

import fnmatch
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from tandem_sdk.aio import AsyncToolHostClient
from tandem_sdk.client import ToolInfo
from tandem_sdk.errors import InvalidArguments, LimitExceeded, SubagentError, ToolNotInScope
from tandem_sdk.protocol import SUBAGENT_HEADER

from tandem.errors import LimitReached, RunFailed
from tandem.llm.api import ModelApi
from tandem.llm.ledger import RunLedger
from tandem.llm.loop import ToolUseLoop
from tandem.llm.prompts import schema_retry, subagent_request, subagent_system
from tandem.session import RunSession
from tandem.store import USAGE_KEYS


@dataclass(frozen=True)
class SubagentCall:
    prompt: str
    input: Any = None
    schema: dict[str, Any] | None = None
    tools: Sequence[str] = ()
    model: str | None = None

    def request(self) -> dict[str, Any]:
        """The call as a recording keeps it and a replay matches it."""
        return {
            "prompt": self.prompt,
            "input": self.input,
            "schema": self.schema,
            "tools": list(self.tools),
            "model": self.model,
        }


def call_summary(request: dict[str, Any]) -> str:
    prompt = str(request.get("prompt", ""))
    return repr(prompt if len(prompt) <= 60 else prompt[:57] + "...")


@dataclass(frozen=True)
class SubagentAnswer:
    text: str
    output: Any  # the parsed answer when a schema was given
    usage: dict[str, int]


class SubagentService:
    def __init__(self, api: ModelApi, toolhost_socket: Path) -> None:
        self.api = api
        self.toolhost_socket = toolhost_socket

    async def run(self, session: RunSession, call: SubagentCall) -> SubagentAnswer:
        """Answer, or raise SubagentError (no valid answer), LimitExceeded (the run's
        budget is spent), ToolNotInScope or InvalidArguments (a bad request)."""
        validator = _validator(call.schema)
        request = call.request()
        if session.mode.recording is not None:
            return self._replayed(session, request)
        if not self.api.configured:
            raise SubagentError(
                "subagent() needs an Anthropic API key: set ANTHROPIC_API_KEY in the"
                " environment of the tandem daemon",
                run_id=session.id,
            )
        child = f"sub-{secrets.token_hex(8)}"  # unguessable: it marks the subagent's calls
        session.subagents.add(child)
        try:
            return await self._run(session, call, request, child, validator)
        finally:
            session.subagents.discard(child)

    async def _run(
        self,
        session: RunSession,
        call: SubagentCall,
        request: dict[str, Any],
        child: str,
        validator: Draft202012Validator | None,
    ) -> SubagentAnswer:
        ledger = RunLedger(session, subagent=child)
        model = call.model or session.workflow.spec.model
        target = f"unix:{self.toolhost_socket}"
        async with AsyncToolHostClient(
            target,
            session.token,
            timeout_s=session.limits.timeout_s,
            metadata=((SUBAGENT_HEADER, child),),
        ) as tools:
            offered = _subset(await tools.list_tools(), call.tools, session.id)
            ledger.emit(
                "subagent.started",
                model=model,
                prompt=call.prompt,
                tools=[t.name for t in offered],
                schema=call.schema is not None,
                raw={"request": request},
            )
            loop = ToolUseLoop(
                api=self.api,
                tools=tools,
                ledger=ledger,
                model=model,
                system=subagent_system(session.workflow.name, call.schema),
                offered=offered,
                max_turns=session.limits.max_turns,
                restrict=True,
            )
            try:
                text = await loop.ask(subagent_request(call.prompt, call.input))
                output = None
                if validator is not None:
                    output, problem = _parse(text, validator)
                    if problem is not None:
                        ledger.emit("subagent.retry", problem=problem)
                        text = await loop.ask(schema_retry(problem))
                        output, problem = _parse(text, validator)
                    if problem is not None:
                        raise RunFailed(f"its answer did not match the schema, twice: {problem}")
            except LimitReached as error:
                ledger.emit("subagent.finished", ok=False, error=error.message, usage=ledger.usage)
                if error.limit == "max_turns":
                    raise SubagentError(f"subagent: {error.message}", run_id=session.id) from None
                raise LimitExceeded(error.message, run_id=session.id) from None
            except RunFailed as error:
                ledger.emit("subagent.finished", ok=False, error=error.message, usage=ledger.usage)
                raise SubagentError(f"subagent: {error.message}", run_id=session.id) from None
        ledger.emit(
            "subagent.finished", ok=True, usage=ledger.usage, raw={"text": text, "output": output}
        )
        return SubagentAnswer(text, output, dict(ledger.usage))

    def _replayed(self, session: RunSession, request: dict[str, Any]) -> SubagentAnswer:
        """A replay's subagent: the recorded answer to the same request, never the model."""
        assert session.mode.recording is not None
        child = f"sub-{secrets.token_hex(8)}"
        ledger = RunLedger(session, subagent=child)
        ledger.emit("subagent.started", replayed=True, raw={"request": request})
        recorded = session.mode.recording.take_subagent(request)
        if recorded is None or recorded.error is not None:
            why = "has no recorded answer" if recorded is None else f"failed: {recorded.error}"
            ledger.emit("subagent.finished", ok=False, replayed=True, error=why)
            raise SubagentError(
                f"subagent({call_summary(request)}) {why} in run {session.mode.recording.run.id}",
                run_id=session.id,
            )
        ledger.emit(
            "subagent.finished",
            ok=True,
            replayed=True,
            raw={"text": recorded.text, "output": recorded.output},
        )
        return SubagentAnswer(recorded.text or "", recorded.output, dict.fromkeys(USAGE_KEYS, 0))


def _validator(schema: dict[str, Any] | None) -> Draft202012Validator | None:
    if schema is None:
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise InvalidArguments(
            f"subagent: the output schema is not valid: {error.message}"
        ) from None
    return Draft202012Validator(schema)


def _subset(in_scope: list[ToolInfo], patterns: Sequence[str], run_id: str) -> list[ToolInfo]:
    """The run's tools that the patterns name; a pattern naming none of them is refused,
    since it asks for something outside the run's scope."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(t.name, pattern) for t in in_scope):
            raise ToolNotInScope(
                f"subagent: {pattern!r} names no tool in the scope of this run",
                tool=pattern,
                run_id=run_id,
            )
    return [t for t in in_scope if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]


def _parse(text: str, validator: Draft202012Validator) -> tuple[Any, str | None]:
    """The answer as JSON and the first problem with it, if any."""
    body = text.strip()
    if body.startswith("```"):  # models often fence JSON even when told not to
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0].strip()
    try:
        value = json.loads(body)
    except json.JSONDecodeError as error:
        return None, f"it is not JSON ({error.msg} at line {error.lineno} column {error.colno})"
    problem = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path) or "the answer"
        return None, f"{where}: {problem.message}"
    return value, None
