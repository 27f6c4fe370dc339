"""Held calls announced in Slack with Approve / Deny buttons, and the clicks that decide
them (`approvals.notify.slack` in workflow.yaml)."""

from .notifier import SlackApprovals

__all__ = ["SlackApprovals"]
