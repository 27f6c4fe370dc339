"""Test helpers for Tandem users: local stand-ins that speak the real wire formats of the
Anthropic Messages API, the Slack Web API and the GitHub REST API.

    from tandem.testing import AnthropicStandIn, GitHubStandIn, Reply, SlackStandIn, ToolUse

See docs/llm.md for what the Messages API stand-in covers of the real API and what it
does not; `slack_api` and `github_api` say the same of theirs.
"""

from tandem.testing.anthropic_api import AnthropicStandIn, RecordedRequest
from tandem.testing.github_api import GitHubStandIn
from tandem.testing.replies import Reply, ToolUse
from tandem.testing.slack_api import SlackStandIn

__all__ = [
    "AnthropicStandIn",
    "GitHubStandIn",
    "RecordedRequest",
    "Reply",
    "SlackStandIn",
    "ToolUse",
]
