"""The Slack messages of a held call: Block Kit blocks and their fallback text, every
value from a run escaped as Slack mrkdwn asks (`&`, `<`, `>`)."""

from __future__ import annotations

import json
import time
from typing import Any

JSON = dict[str, Any]
APPROVE = "tandem_approve"
DENY = "tandem_deny"
CALL_BLOCK = "tandem_call"
ACTIONS_BLOCK = "tandem_decide"
# The arguments shown (escaped), at most; the section's text may hold 3000 in all.
MAX_ARGUMENT_CHARS = 1500
MAX_SECTION_CHARS = 3000
RUN_ENDED_TEXT = ":black_square_for_stop: Not decided: the run ended before a decision"


def escape(text: str) -> str:
    """Slack mrkdwn: these three are markup, everything else shows as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def call_value(run_id: str, seq: int) -> str:
    """A button's `value`: the run and the held call (its tool.call event's seq)."""
    return json.dumps({"run": run_id, "call": seq}, separators=(",", ":"))


def parse_value(value: Any) -> tuple[str, int] | None:
    try:
        data = json.loads(str(value))
        run_id, seq = data["run"], data["call"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(run_id, str) or not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return run_id, seq


def arguments_text(arguments: Any, limit: int = MAX_ARGUMENT_CHARS) -> str:
    """The arguments as compact JSON, escaped, then cut to a length a message can show
    (never inside an `&...;` entity), safe inside a ``` block (no run of three backticks
    can close it)."""
    text = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    shown = escape(text).replace("```", "`\u200b`\u200b`")
    if len(shown) <= limit:
        return shown
    cut = max(limit - len(f"… ({len(shown)} more chars)"), 0)
    entity = shown.rfind("&", max(cut - len("&amp;") + 1, 0), cut)
    if entity != -1 and shown.find(";", entity) >= cut:
        cut = entity  # an entity would be split: end before it
    return shown[:cut] + f"… ({len(shown) - cut} more chars)"


def held_message(
    *,
    run_id: str,
    workflow: str,
    coordinator: str,
    tool: str,
    number: int | None,
    arguments: Any,
    deadline: float,
    seq: int,
    now: float | None = None,
) -> tuple[str, list[JSON]]:
    """The fallback text and blocks of a held call: what, where, time left, two buttons."""
    left = max(deadline - (now if now is not None else time.time()), 0.0)
    until = time.strftime("%H:%M:%S UTC", time.gmtime(deadline))
    which = f" · call {number}" if number is not None else ""
    head = f"*Approval needed:* `{escape(tool)}`\n"
    tail = (
        f"*Run* `{escape(run_id)}`{which} · *workflow* `{escape(workflow)}`"
        f" · *coordinator* {escape(coordinator)}\n"
        f"*Time left:* {_duration(left)}, until <!date^{int(deadline)}^{{time_secs}}|{until}>"
        " (then it is denied)"
    )
    room = MAX_SECTION_CHARS - len(head) - len(tail) - len("``````\n")
    text = f"{head}```{arguments_text(arguments, min(MAX_ARGUMENT_CHARS, room))}```\n{tail}"
    value = call_value(run_id, seq)
    blocks: list[JSON] = [
        {"type": "section", "block_id": CALL_BLOCK, "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "block_id": ACTIONS_BLOCK,
            "elements": [
                _button("Approve", APPROVE, value, "primary"),
                _button("Deny", DENY, value, "danger"),
            ],
        },
    ]
    fallback = f"Approval needed: {escape(tool)} in run {escape(run_id)} ({escape(workflow)})"
    return fallback, blocks


def call_text(blocks: list[JSON]) -> str | None:
    """The text of the call's section among a message's blocks, if it has one."""
    for block in blocks:
        if block.get("block_id") == CALL_BLOCK:
            text = block.get("text")
            return str(text.get("text")) if isinstance(text, dict) else None
    return None


def settled_message(call_blocks: list[JSON], outcome: str) -> tuple[str, list[JSON]]:
    """The message once decided: the call as it was shown, no buttons, the outcome."""
    kept = [b for b in call_blocks if b.get("type") != "actions"]
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]}
    return outcome, [*kept, context]


def outcome_text(
    approved: bool, reason: str, clicker: str | None, timed_out: bool, by: str | None = None
) -> str:
    """How a decision reads: who made it (a Slack user as a mention, the console, the CLI)
    and why."""
    if timed_out:
        return f":hourglass: Not decided in time: denied ({escape(reason)})"
    if clicker is not None:
        who = f"<@{clicker}>"
        return f":white_check_mark: Approved by {who}" if approved else f":x: Denied by {who}"
    if by == "console":
        if approved:
            return f":white_check_mark: Approved in the console ({escape(reason)})"
        return f":x: Denied in the console: {escape(reason)}"
    if approved:
        return f":white_check_mark: Approved with `tandem approve` ({escape(reason)})"
    return f":x: Denied with `tandem deny`: {escape(reason)}"


def _button(label: str, action_id: str, value: str, style: str) -> JSON:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "style": style,
        "value": value,
    }


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
