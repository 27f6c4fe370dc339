"""Open the pull request the trigger describes: {owner, repo, title, head, base, body,
draft}, the arguments of `github.create_pull_request`."""

from typing import Any


def handler(trigger: dict[str, Any], tools: Any, virtual_files: Any, subagent: Any) -> Any:
    return tools.github.create_pull_request(**trigger)
