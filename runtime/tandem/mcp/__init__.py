"""MCP both ways: MCP servers as Tandem plugins, and Tandem served to MCP clients."""
