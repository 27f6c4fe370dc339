"""Workflows tandem itself ships, run from their own folder rather than the project's
(Control Trigger's `workflow_path` names one of these, and nothing else)."""

from __future__ import annotations

from pathlib import Path

# `tandem rewrite --pr` opens its pull request through a run of this (tandem.rewrite.ship).
PR_WORKFLOW = Path(__file__).parent / "rewrite" / "open_pull_request"
BUILTIN_FOLDERS = frozenset({PR_WORKFLOW.resolve()})
