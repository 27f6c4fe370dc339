"""The names of an escalation, for every part that reads one: a script's run that the
model took over (`raise Escalate(...)`; the hand-over is tandem.coordinators.handover)."""

from __future__ import annotations

# The coordinator a run records once the model took it over from the script.
ESCALATED = "script+llm"
# The trace event of the hand-over: {"reason", "context", "calls": how many so far}.
EVENT = "run.escalated"


def started_as(coordinator: str) -> str:
    """The coordinator a run started with: `script` for an escalated run."""
    return "script" if coordinator == ESCALATED else coordinator
