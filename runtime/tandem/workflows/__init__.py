"""Workflows: `workflows/<name>/workflow.yaml`, validated at load, hot-reloaded."""

from .loader import Workflow, load_workflow
from .registry import WorkflowRegistry

__all__ = ["Workflow", "WorkflowRegistry", "load_workflow"]
