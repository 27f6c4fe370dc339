"""pr_merged as reviewed code: the same tools, trigger and virtual file as prompt.md.

A manual run sweeps every pull request linked from the channel's recent messages; a
webhook delivery (a pull request closed) looks only at that pull request. It is
idempotent: a reaction already present is left alone, so running it twice adds nothing.
"""

import json
import re

from tandem_sdk import errors

# https://HOST/OWNER/REPO/pull/NUMBER, with anything after the number ignored.
PULL_URL = re.compile(r"^(https://[^/\s]+/[^/\s]+/[^/\s]+/pull/\d+)(?:[/?#].*)?$")


def handler(trigger, tools, virtual_files, subagent):
    settings = json.loads(virtual_files["settings.json"])
    reactions = settings["reactions"]
    only = _pull_from_webhook(trigger)
    messages = tools.slack.get_messages(channel=settings["channel"], limit=settings["look_back"])

    statuses = {}  # pull request URL -> "open" | "merged" | "closed" | None (unknown)
    added, present = [], []
    for message in messages:
        pulls = [url for url in _pull_urls(message["links"]) if only in (None, url)]
        for url in pulls:
            if url not in statuses:
                statuses[url] = _status(tools, url)
        wanted = sorted({reactions[s] for u in pulls if (s := statuses[u]) in reactions})
        for name in wanted:
            where = {"ts": message["ts"], "reaction": name}
            if name in message["reactions"] or _react(tools, settings, message, name):
                present.append(where)
            else:
                added.append(where)
    return {
        "added": added,
        "already_present": present,
        "pull_requests": statuses,
        "unknown": sorted(url for url, status in statuses.items() if status is None),
    }


def _pull_from_webhook(trigger):
    """The pull request of a webhook delivery, or None for a sweep."""
    payload = trigger.get("payload") if isinstance(trigger, dict) else None
    pull = payload.get("pull_request") if isinstance(payload, dict) else None
    if not pull:
        return None
    match = PULL_URL.match(pull["html_url"])
    return match.group(1) if match else None


def _pull_urls(links):
    """Each pull request linked, once, in order."""
    urls = [m.group(1) for link in links if (m := PULL_URL.match(link))]
    return list(dict.fromkeys(urls))


def _status(tools, url):
    try:
        return tools.github.pr_status(url=url)["state"]
    except errors.ToolError as error:
        if error.type == "not_found":
            return None
        raise


def _react(tools, settings, message, name):
    """Add the reaction; True when Slack says it was already there."""
    try:
        tools.slack.add_reaction(channel=settings["channel"], ts=message["ts"], name=name)
    except errors.ToolError as error:
        if error.type == "already_reacted":
            return True
        raise
    return False
