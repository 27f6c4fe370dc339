"""A recorded model for the `pr_merged` example: the conversation a model that follows
`workflows/pr_merged/prompt.md` has on the seeded workspace (`workspace.py`), for the
Messages API stand-in to replay when no `ANTHROPIC_API_KEY` is set (tests and the demo).

It is a recording, not a model: the tool calls are fixed in advance from the seed, so it
shows the LLM coordinator's plumbing (tool names, results, usage, the trace) working end
to end, not a model's judgement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .replies import Reply
from .workspace import CHANNELS, MESSAGES, OWNER, PULLS, REPO, WEB

_LINK = re.compile(r"<([^>|]+)(?:\|[^>]*)?>")


def webhook_conversation(number: int, settings: Mapping[str, Any]) -> list[Reply]:
    """The model's turns for a webhook delivery saying pull request `number` closed (merged
    or not, as the seed says); `settings` is the workflow's `settings.json`."""
    channel = str(settings["channel"])
    limit = settings["look_back"]
    status = next(p.status for p in PULLS if p.number == number)
    emoji = settings["reactions"][status]
    url = f"{WEB}/{OWNER}/{REPO}/pull/{number}"
    channel_id = next(c.id for c in CHANNELS if c.name == channel)
    linking = [
        m
        for m in MESSAGES
        if m.channel == channel_id and url in _LINK.findall(m.text) and emoji not in m.reactions
    ]
    reactions = [
        ("slack__add_reaction", {"channel": channel, "ts": m.ts, "name": emoji}) for m in linking
    ]
    return [
        Reply.tool_use(
            ("files__read", {"path": "settings.json"}),
            text="I'll read the settings first.",
        ),
        Reply.tool_use(("slack__get_messages", {"channel": channel, "limit": limit})),
        Reply.tool_use(
            ("github__pr_status", {"url": url}),
            text=f"The delivery is about {OWNER}/{REPO}#{number}; checking its status.",
        ),
        Reply.tool_use(*reactions, text=f"It is {status}; {len(reactions)} message(s) link it."),
        Reply.text(
            f"Added {len(reactions)} reaction(s): :{emoji}: on the messages linking "
            f"{OWNER}/{REPO}#{number}. No unknown pull requests."
        ),
    ]
