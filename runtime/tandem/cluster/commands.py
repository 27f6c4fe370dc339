"""Commands between daemons: a daemon asked to cancel, approve or deny a run that another
daemon executes (or sent a Slack click on one) writes a command row for that daemon,
which picks it up within a poll, carries it out and writes the answer; the asking daemon
waits for it, with a bound."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from tandem_sdk.errors import TandemError

from tandem.store import RunStore

from . import wakeup

# How often the asking daemon looks for the answer, and how long it waits for one.
ANSWER_POLL_S = 0.02


class NoAnswer(TandemError):
    """The daemon executing a run did not answer a command in time (UNAVAILABLE)."""


@dataclass(frozen=True)
class Command:
    id: str
    run_id: str
    kind: str  # "cancel" | "decide" (by call number) | "decide_held" (by seq) | "click"
    args: dict[str, Any]


def send(store: RunStore, owner: str, run_id: str, kind: str, args: dict[str, Any]) -> str:
    command_id = secrets.token_hex(8)
    store._run(
        "INSERT INTO commands (id, run_id, owner, kind, args_json, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (command_id, run_id, owner, kind, json.dumps(args), time.time()),
    )
    wakeup.hint(store)
    return command_id


async def answer_of(store: RunStore, command_id: str, within_s: float, who: str) -> Any:
    """The answer the owner wrote; NoAnswer when none came within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        row = store._run(
            "SELECT result_json FROM commands WHERE id=? AND done_at IS NOT NULL", (command_id,)
        ).fetchone()
        if row is not None:
            return json.loads(row[0])
        await asyncio.sleep(ANSWER_POLL_S)
    # Withdrawn, so an owner that comes back late does not carry it out unasked.
    store._run(
        "UPDATE commands SET done_at=? WHERE id=? AND done_at IS NULL", (time.time(), command_id)
    )
    raise NoAnswer(f"the daemon running the run ({who}) did not answer within {within_s:g}s")


def pending(store: RunStore, owner: str) -> list[Command]:
    rows = store._run(
        "SELECT id, run_id, kind, args_json FROM commands WHERE owner=? AND done_at IS NULL"
        " ORDER BY created_at",
        (owner,),
    ).fetchall()
    return [Command(i, run_id, kind, json.loads(args)) for i, run_id, kind, args in rows]


def answer(store: RunStore, command_id: str, result: Any) -> None:
    store._run(
        "UPDATE commands SET done_at=?, result_json=? WHERE id=? AND done_at IS NULL",
        (time.time(), json.dumps(result), command_id),
    )
