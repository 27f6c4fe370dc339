"""Coordinators: what decides which tools a run calls. Each is a ToolHost client."""
