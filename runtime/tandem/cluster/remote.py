"""Cancel, approve and deny from any daemon: done here when this host executes the run (or
it waits in the shared queue), else asked of the daemon that executes it, as a command it
answers within a poll. The same way carries a Slack button click to the daemon holding its
call, the one that posted the message (and so the one that checks and updates it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tandem_sdk.errors import NotFound

from . import claims, commands, members

if TYPE_CHECKING:
    from tandem.runs import RunManager

# How long a daemon waits for another's answer: a few of its polls, and a heartbeat.
ANSWER_WITHIN_S = 5.0


@runtime_checkable
class ClickTaker(Protocol):
    """An approval observer that takes button clicks (Slack's), passed on by another daemon
    as the plain fields it read them into; whether it decided a call."""

    def take_click(self, fields: dict[str, Any]) -> bool: ...


async def cancel(runs: RunManager, run_id: str) -> bool:
    if runs.cancel(run_id):
        return True
    answer = await _ask(runs, run_id, "cancel", {})
    return bool(answer)


async def decide(
    runs: RunManager, run_id: str, call: int | None, approved: bool, reason: str, by: str | None
) -> list[int]:
    if run_id in runs.sessions:
        return runs.decide(run_id, call, approved, reason, by)
    args = {"call": call, "approved": approved, "reason": reason, "by": by}
    answer = await _ask(runs, run_id, "decide", args)
    if answer is None:
        raise NotFound(f"run {run_id!r} is not running")
    if isinstance(answer, dict):  # the owner's NotFound, word for word
        raise NotFound(str(answer["not_found"]))
    return [int(n) for n in answer]


async def decide_held(
    runs: RunManager, run_id: str, seq: int, approved: bool, reason: str, by: str | None
) -> bool:
    """Answer the call held at tool.call `seq` (the console's way to name one); False when
    it is not waiting (any more), wherever the run is."""
    session = runs.sessions.get(run_id)
    if session is not None:
        return session.decide_held(seq, approved, reason, by)
    args = {"seq": seq, "approved": approved, "reason": reason, "by": by}
    return bool(await _ask(runs, run_id, "decide_held", args))


async def pass_click(runs: RunManager, run_id: str, fields: dict[str, Any]) -> bool | None:
    """A click on a call of a run another daemon executes, passed on to it: whether it
    decided the call; None when no other daemon executes the run (the click is this
    daemon's to answer)."""
    if run_id in runs.sessions:
        return None
    answer = await _ask(runs, run_id, "click", fields)
    return None if answer is None else bool(answer)


async def _ask(runs: RunManager, run_id: str, kind: str, args: dict[str, Any]) -> Any:
    """The answer of the daemon executing the run; None when no other daemon does."""
    held = claims.owner_of(runs.store, run_id)
    if held is None:
        raise NotFound(f"no run {run_id!r}")
    owner, status = held
    if owner is None or owner == runs.node.id or status not in ("queued", "running", "waiting"):
        return None
    live = {m.id: m for m in members.members(runs.store)}
    who = live[owner].name() if owner in live else owner
    now = runs.node.now
    command_id = commands.send(runs.store, owner, run_id, kind, args, now())
    return await commands.answer_of(runs.store, command_id, ANSWER_WITHIN_S, who, now)


def carry_out(runs: RunManager, command: commands.Command) -> None:
    """A command another daemon left for this one: taken, done, and answered; not done
    when its asker withdrew it first (it stopped waiting for the answer)."""
    if not commands.take(runs.store, command.id, runs.node.now()):
        return
    result: Any = None
    if command.kind == "cancel":
        result = runs.cancel(command.run_id)
    elif command.kind == "decide":
        a = command.args
        try:
            result = runs.decide(command.run_id, a["call"], a["approved"], a["reason"], a["by"])
        except NotFound as error:
            result = {"not_found": error.message}
    elif command.kind == "decide_held":
        a = command.args
        session = runs.sessions.get(command.run_id)
        held = session is not None and session.decide_held(
            a["seq"], a["approved"], a["reason"], a["by"]
        )
        result = bool(held)
    elif command.kind == "click":
        observer = runs.approval_observer
        result = isinstance(observer, ClickTaker) and observer.take_click(command.args)
    commands.answer(runs.store, command.id, result, runs.node.now())
