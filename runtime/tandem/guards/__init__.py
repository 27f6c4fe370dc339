"""Guards: a workflow's guards.py, asked by the host before each tool call of either
coordinator (and of a dry run, shadow, replay or MCP session alike).

A guard is a top-level function of guards.py named after a tool (`guard_name`), called
as `guard(call, history)` with `call = {"tool", "arguments"}` and the run's calls so far,
`[{"tool", "arguments", "result" | "error", "refused"}]`. None lets the call through; a
string refuses it with that reason. A guard that raises, gives no answer within
`guards.timeout_s`, answers anything else, or whose process dies refuses too, saying so.
A refused call is never made: the caller gets a `guard_refused` tool error. Guarded calls
of one run take turns (GuardTurn) from the question until their answer is in the history;
a call held for approval gives its turn back while it waits and is asked again once
approved.
"""

from .check import GuardTurn, Refusal, RunGuards, guards_for

__all__ = ["GuardTurn", "Refusal", "RunGuards", "guards_for"]
