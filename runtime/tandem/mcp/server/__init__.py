"""Tandem as an MCP server (`tandem mcp serve`, and `/mcp` on the daemon's HTTP listener):
a workflow's tools as one session's run, the workflows themselves as tools, recorded runs
as resources, the rewrite brief as a prompt, and a replay of a candidate script."""
