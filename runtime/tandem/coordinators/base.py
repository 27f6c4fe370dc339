"""The coordinator seam: one kind per `coordinator:` value of a workflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tandem.session import RunSession


class Coordinator(Protocol):
    kind: str

    async def run(self, session: RunSession) -> Any:
        """Drive the run to its end; return its JSON-ready output or raise RunFailed."""
        ...
