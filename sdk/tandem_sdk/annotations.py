"""What a tool does to the world, in the Model Context Protocol's vocabulary (its tool
annotations: readOnlyHint, destructiveHint, idempotentHint, openWorldHint), so a tool
maps one to one onto an MCP tool.

The host relies on `read_only`: in a dry run, and always in a replay, only read-only tools
run. The others inform people and the model. Undeclared, a tool has side effects, may be
destructive, is not idempotent, and reaches an open world, as MCP assumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import DefinitionError


@dataclass(frozen=True)
class ToolAnnotations:
    read_only: bool = False  # changes nothing anywhere
    destructive: bool = True  # may delete or overwrite (meaningful only if not read_only)
    idempotent: bool = False  # calling it again with the same arguments changes nothing more
    open_world: bool = True  # reaches outside the host (a web service), not a closed store

    @property
    def side_effects(self) -> bool:
        return not self.read_only

    def describe(self) -> str:
        """A few words for people and for the model: "read-only", "side effects, ..."."""
        if self.read_only:
            words = ["read-only"]
        else:
            words = [
                "side effects",
                "destructive" if self.destructive else "not destructive",
                "idempotent" if self.idempotent else "not idempotent",
            ]
        if not self.open_world:
            words.append("closed world")
        return ", ".join(words)

    def to_mcp(self) -> dict[str, bool]:
        return {
            "readOnlyHint": self.read_only,
            "destructiveHint": self.destructive,
            "idempotentHint": self.idempotent,
            "openWorldHint": self.open_world,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "read_only": self.read_only,
            "destructive": self.destructive,
            "idempotent": self.idempotent,
            "open_world": self.open_world,
        }


def resolve_annotations(
    where: str,
    *,
    side_effects: bool | None,
    read_only: bool | None,
    destructive: bool | None,
    idempotent: bool | None,
    open_world: bool | None,
) -> ToolAnnotations:
    """The annotations a tool declared, completed with MCP's defaults; contradictions are
    DefinitionErrors naming the tool."""
    if side_effects is not None and read_only is not None and side_effects == read_only:
        raise DefinitionError(where, "side_effects and read_only contradict each other")
    reads = read_only if read_only is not None else side_effects is False
    if reads:
        if destructive or idempotent is False:
            raise DefinitionError(
                where, "a read-only tool is neither destructive nor non-idempotent"
            )
        return ToolAnnotations(True, False, True, open_world is not False)
    return ToolAnnotations(
        read_only=False,
        destructive=destructive is not False,
        idempotent=bool(idempotent),
        open_world=open_world is not False,
    )
