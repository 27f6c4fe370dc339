"""pr_merged's guards: the host asks them before each call, whoever coordinates the run.

A guard returns None to let the call through, or the reason it refuses it.
"""

import json
import os
import re
from pathlib import Path

PULL_URL = re.compile(r"^(https://[^/\s]+/[^/\s]+/[^/\s]+/pull/\d+)(?:[/?#].*)?$")
# The guard process sees the workflow's folder (read-only) at TANDEM_WORKFLOW_DIR: the
# reaction that means "merged" is the one the script and the prompt read in settings.json.
_FOLDER = Path(os.environ.get("TANDEM_WORKFLOW_DIR") or Path(__file__).parent)
MERGED = json.loads((_FOLDER / "files" / "settings.json").read_text())["reactions"]["merged"]


def slack_add_reaction(call, history):
    """React :merged: only on a message this run read, that links a pull request this run
    saw merged (github.pr_status): never on one whose pull requests are open or unchecked."""
    arguments = call["arguments"]
    if arguments.get("name") != MERGED:
        return None
    ts = arguments.get("ts")
    message = _message(history, ts)
    if message is None:
        return f"message {ts} was not read in this run: read it with slack.get_messages first"
    links = [m.group(1) for link in message.get("links", []) if (m := PULL_URL.match(link))]
    states = _states(history)
    if any(states.get(url) == "merged" for url in links):
        return None
    if not links:
        return f"message {ts} links no pull request"
    seen = ", ".join(f"#{url.rsplit('/', 1)[1]} is {states.get(url, 'unchecked')}" for url in links)
    return f"no pull request linked from message {ts} merged: {seen}"


def _message(history, ts):
    for entry in reversed(history):
        if entry["tool"] == "slack.get_messages" and isinstance(entry.get("result"), list):
            for message in entry["result"]:
                if message.get("ts") == ts:
                    return message
    return None


def _states(history):
    """Pull request URL -> its state, as github.pr_status answered in this run."""
    states = {}
    for entry in history:
        result = entry.get("result")
        if entry["tool"] != "github.pr_status" or not isinstance(result, dict):
            continue
        for url in (entry["arguments"].get("url", ""), result.get("url", "")):
            if m := PULL_URL.match(url or ""):
                states[m.group(1)] = result.get("state")
    return states
