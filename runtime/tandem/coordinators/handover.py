"""A script hands its run to the model (`raise Escalate(reason, context=...)`).

The script's part has ended (its process is gone); the same run, with its session (token,
tools in scope, limits, approvals, budget, trace), goes on with the LLM coordinator. Its
first request holds the workflow's prompt and the trigger (the system prompt, as for any
run) and the hand-over: the reason, the context, and the calls the script made with their
results, read from the run's own trace. From then on the run's calls are the model's:
approvals for `llm` apply, and the run is recorded with coordinator ESCALATED.

A shadow, and a replay through a candidate's folder (a rewrite's validation), never hand
over: the escalation is recorded and the run fails saying so (a candidate that escalates
does not agree anyway). A user's replay of the workflow hands over as a live run does; the
model is asked as in an llm replay, its tool calls answered from the recording.

The trace's `run.escalated` event (reason, context, how many calls so far) marks the
moment; the ledger counts these per workflow and reason, and `tandem rewrite` offers the
escalated runs first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tandem.errors import Escalated, RunFailed
from tandem.escalation import ESCALATED, EVENT
from tandem.llm.api import MISSING_KEY
from tandem.llm.coordinator import LlmCoordinator
from tandem.llm.prompts import handover
from tandem.replay.recording import Recording
from tandem.session import RunSession
from tandem.store import PLAN_KINDS, RunStore

from .base import Coordinator

# What the model is shown of the context and of the script's calls, in characters of JSON.
CONTEXT_BUDGET = 8_000
CALLS_BUDGET = 40_000


async def hand_over(
    session: RunSession,
    escalation: Escalated,
    coordinators: Mapping[str, Coordinator],
    store: RunStore,
) -> Any:
    """Continue `session` with the model; its output is the run's. RunFailed, saying why,
    when no model can take it: the workflow has no prompt, or the host has no API key."""
    record = store.get(session.id, kinds=PLAN_KINDS)
    calls = [call.to_fixture() for call in Recording.from_run(record).calls] if record else []
    session.emit(
        EVENT,
        reason=escalation.reason,
        context=escalation.context,
        calls=len(calls),
    )
    said = f"the script escalated ({escalation.reason})"
    mode = session.mode
    if mode.name == "shadow" or mode.candidate:
        # A check of a script, never a run to finish: the model would be asked live (or
        # take the replies scripted for the command's own runs). Recorded, then ended.
        what = "a shadow" if mode.name == "shadow" else "a candidate's replay"
        raise RunFailed(f"{said}; {what} does not hand over to the model")
    if session.workflow.prompt_text is None:
        raise RunFailed(
            f"{said}, but workflow {session.workflow.name!r} has no prompt for the model to"
            " go on with: add `prompt:` to its workflow.yaml"
        )
    llm = coordinators.get("llm")
    if not isinstance(llm, LlmCoordinator) or not llm.api.configured:
        raise RunFailed(f"{said}, but no model is configured: {MISSING_KEY}")
    # Bounded, as rewrite's material is: a few large results must not fill the request.
    from tandem.rewrite.material import shrink  # on a hand-over only: not on every start

    told = handover(
        escalation.reason, shrink(escalation.context, CONTEXT_BUDGET), shrink(calls, CALLS_BUDGET)
    )
    session.coordinator = "llm"  # the calls from here on are the model's (approvals)
    store.set_coordinator(session.id, ESCALATED)
    return await llm.converse(session, told)
