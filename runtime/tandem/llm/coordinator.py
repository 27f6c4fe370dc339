"""`coordinator: llm`: the model drives the run through a ToolHost client holding the run's
token, over the same socket a script uses. Nothing here calls the run's tools directly."""

from __future__ import annotations

from pathlib import Path

from tandem_sdk.aio import AsyncToolHostClient

from tandem.errors import RunFailed
from tandem.llm.api import ModelApi
from tandem.llm.ledger import RunLedger
from tandem.llm.loop import ToolUseLoop
from tandem.llm.prompts import START, run_system
from tandem.session import RunSession


class LlmCoordinator:
    kind = "llm"

    def __init__(self, api: ModelApi, toolhost_socket: Path) -> None:
        self.api = api
        self.toolhost_socket = toolhost_socket

    async def run(self, session: RunSession) -> str:
        return await self.converse(session, START)

    async def converse(self, session: RunSession, first: str) -> str:
        """Drive the run from a first user message: START for a run of its own, the
        hand-over for a run a script escalated (tandem.coordinators.handover)."""
        if session.workflow.prompt_text is None:
            raise RunFailed(f"workflow {session.workflow.name!r} has no prompt")
        self.api.client()  # fail before anything else when there is no key
        target = f"unix:{self.toolhost_socket}"
        async with AsyncToolHostClient(target, session.token) as tools:
            run = await tools.get_run()
            offered = await tools.list_tools()
            files = await tools.list_files()
            loop = ToolUseLoop(
                api=self.api,
                tools=tools,
                ledger=RunLedger(session),
                model=session.workflow.spec.model,
                system=run_system(
                    session.workflow.prompt_text,
                    files,
                    run.trigger,
                    session.workflow.spec.input_schema,
                ),
                offered=offered,
                max_turns=int(run.limits["max_turns"]),
            )
            return await loop.ask(first)
