"""Tandem: workflows coordinated by an LLM or by reviewed code, over one tool interface."""

__version__ = "0.1.0"
