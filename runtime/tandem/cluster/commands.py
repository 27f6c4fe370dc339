"""Commands between daemons: a daemon asked to cancel, approve or deny a run that another
daemon executes (or sent a Slack click on one) writes a command row for that daemon,
which picks it up within a poll, carries it out and writes the answer; the asking daemon
waits for it, with a bound. The owner takes a command before carrying it out, and the asker
withdraws only one not taken: a command is either done and answered, or never done."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tandem_sdk.errors import TandemError

from tandem.store import RunStore

from . import wakeup

# How often the asking daemon looks for the answer.
ANSWER_POLL_S = 0.02
# How much longer it waits for the answer to a command the owner took.
TAKEN_WAIT_S = 5.0


class NoAnswer(TandemError):
    """The daemon executing a run did not take a command in time: withdrawn, never done
    (UNAVAILABLE: send it again)."""


class AnswerLate(TandemError):
    """The daemon executing a run took a command, but its answer did not come in time: it
    may have been done (DEADLINE_EXCEEDED)."""


@dataclass(frozen=True)
class Command:
    id: str
    run_id: str
    kind: str  # "cancel" | "decide" (by call number) | "decide_held" (by seq) | "click"
    args: dict[str, Any]


def send(
    store: RunStore, owner: str, run_id: str, kind: str, args: dict[str, Any], now: float
) -> str:
    command_id = secrets.token_hex(8)
    store._run(
        "INSERT INTO commands (id, run_id, owner, kind, args_json, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (command_id, run_id, owner, kind, json.dumps(args), now),
    )
    wakeup.hint(store)
    return command_id


async def answer_of(
    store: RunStore,
    command_id: str,
    within_s: float,
    who: str,
    clock: Callable[[], float],
    *,
    taken_s: float = TAKEN_WAIT_S,
) -> Any:
    """The answer the owner wrote. NoAnswer when the owner did not take the command within
    `within_s` (then withdrawn, so an owner that comes back late does not carry it out
    unasked); AnswerLate when it took it but no answer came `taken_s` later."""
    result = await _poll(store, command_id, within_s)
    if result is not None:
        return json.loads(result)
    withdrawn = store._run(
        "UPDATE commands SET done_at=? WHERE id=? AND done_at IS NULL AND taken_at IS NULL",
        (clock(), command_id),
    )
    if withdrawn.rowcount == 1:
        raise NoAnswer(f"the daemon running the run ({who}) did not answer within {within_s:g}s")
    result = await _poll(store, command_id, taken_s)
    if result is not None:
        return json.loads(result)
    raise AnswerLate(f"sent to daemon {who}, which took it; its answer did not come in time")


async def _poll(store: RunStore, command_id: str, within_s: float) -> str | None:
    """The answer's JSON, looked for until `within_s` passed (at least once)."""
    deadline = time.monotonic() + within_s
    while True:
        row = store._run(
            "SELECT result_json FROM commands WHERE id=? AND done_at IS NOT NULL"
            " AND result_json IS NOT NULL",
            (command_id,),
        ).fetchone()
        if row is not None:
            return str(row[0])
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(ANSWER_POLL_S)


def pending(store: RunStore, owner: str) -> list[Command]:
    """The commands left for `owner`, neither taken nor withdrawn."""
    rows = store._run(
        "SELECT id, run_id, kind, args_json FROM commands WHERE owner=? AND done_at IS NULL"
        " AND taken_at IS NULL ORDER BY created_at",
        (owner,),
    ).fetchall()
    return [Command(i, run_id, kind, json.loads(args)) for i, run_id, kind, args in rows]


def take(store: RunStore, command_id: str, now: float) -> bool:
    """Take a command before carrying it out; False when its asker withdrew it (or another
    pass took it): then it is not done."""
    row = store._run(
        "UPDATE commands SET taken_at=? WHERE id=? AND done_at IS NULL AND taken_at IS NULL"
        " RETURNING id",
        (now, command_id),
    ).fetchone()
    return row is not None


def answer(store: RunStore, command_id: str, result: Any, now: float) -> None:
    store._run(
        "UPDATE commands SET done_at=?, result_json=? WHERE id=? AND done_at IS NULL",
        (now, json.dumps(result), command_id),
    )
