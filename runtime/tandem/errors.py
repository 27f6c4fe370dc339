"""Host-side errors. They extend the one tree of `tandem_sdk.errors`:

TandemError
└── RunFailed            a coordinator ended the run unsuccessfully (fields: details)
    └── LimitReached     a run limit ended the run (field: limit)
"""

from __future__ import annotations

from tandem_sdk.errors import TandemError


class RunFailed(TandemError):
    def __init__(self, message: str, *, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


class LimitReached(RunFailed):
    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
