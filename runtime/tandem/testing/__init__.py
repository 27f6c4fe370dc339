"""Test helpers for Tandem users: a local stand-in for the Anthropic Messages API.

    from tandem.testing import AnthropicStandIn, Reply, ToolUse

See docs/llm.md for what it covers of the real API and what it does not.
"""

from tandem.testing.anthropic_api import AnthropicStandIn, RecordedRequest
from tandem.testing.replies import Reply, ToolUse

__all__ = ["AnthropicStandIn", "RecordedRequest", "Reply", "ToolUse"]
