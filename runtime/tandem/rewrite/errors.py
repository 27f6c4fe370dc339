"""The rewrite's errors. They extend the one tree of `tandem_sdk.errors`:

TandemError
└── RewriteError        the rewrite could not go on (the model's answer, the API, a file)
    └── BranchError     --branch/--pr: not a repository to commit to, or git refused
"""

from __future__ import annotations

from tandem_sdk.errors import TandemError


class RewriteError(TandemError):
    """The rewrite stopped; `answer` is the model's text when the answer was the problem."""

    def __init__(self, message: str, *, answer: str | None = None) -> None:
        super().__init__(message)
        self.answer = answer


class BranchError(RewriteError):
    """The rewrite's branch cannot be made or pushed: the repository's state, or git's
    refusal, in words a person can act on."""
