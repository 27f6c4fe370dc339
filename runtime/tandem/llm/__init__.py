"""The Anthropic tool-use loop, shared by the LLM coordinator and the subagent.

Both are ToolHost clients holding a run token: the loop reaches tools only through
`tandem_sdk.aio.AsyncToolHostClient`, exactly as a script does through the sync client.
"""
