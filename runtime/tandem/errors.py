"""Host-side errors. They extend the one tree of `tandem_sdk.errors`:

TandemError
└── RunFailed            a coordinator ended the run unsuccessfully (fields: details)
    ├── LimitReached     a run limit ended the run (field: limit)
    └── Escalated        the script handed the run to the model (fields: reason, context):
                         the host continues it with the LLM coordinator, so the run fails
                         with it only where no hand-over happens
"""

from __future__ import annotations

from typing import Any

from tandem_sdk.errors import TandemError


class RunFailed(TandemError):
    def __init__(self, message: str, *, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


class LimitReached(RunFailed):
    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class Escalated(RunFailed):
    def __init__(self, reason: str, context: Any) -> None:
        super().__init__(f"the script escalated: {reason}")
        self.reason = reason
        self.context = context
