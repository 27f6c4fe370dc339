"""All workflows of a project, reloadable: a folder that stops loading keeps its last
good version, and one broken workflow never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from .loader import WORKFLOW_FILE, Workflow, WorkflowError, load_workflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkflowState:
    name: str
    folder: Path
    current: Workflow | None  # the version runs get
    error: WorkflowError | None  # why the latest load failed, if it did


class WorkflowRegistry:
    def __init__(
        self,
        folder: Path,
        known_tools: Callable[[], Collection[str]],
        broken_plugins: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.folder = folder
        self._known_tools = known_tools
        self._broken_plugins = broken_plugins
        self._states: dict[str, WorkflowState] = {}

    def reload(self, only: Collection[str] | None = None) -> list[WorkflowError]:
        """Load the workflow folders again (just the folders named in `only`, when given:
        what a file change touched); returns the errors of this load."""
        tools = self._known_tools()
        broken = self._broken_plugins()
        if only is None:
            names = [f.name for f in sorted(self.folder.iterdir())] if self.folder.is_dir() else []
            found: dict[str, WorkflowState] = {}
        else:
            names, found = sorted(only), dict(self._states)
        errors: list[WorkflowError] = []
        for name in names:
            folder = self.folder / name
            found.pop(name, None)
            if not (folder / WORKFLOW_FILE).is_file():
                continue  # not (or no longer) a workflow
            state = self._load(folder, tools, broken)
            if state.error is not None:
                errors.append(state.error)
            found[name] = state
        self._states = dict(sorted(found.items()))
        return errors

    def _load(
        self, folder: Path, tools: Collection[str], broken: Mapping[str, str]
    ) -> WorkflowState:
        previous = self._states.get(folder.name)
        try:
            workflow = load_workflow(folder, tools, broken)
        except WorkflowError as error:
            last_good = previous.current if previous else None
            return WorkflowState(folder.name, folder, last_good, error)
        if (
            previous is None
            or previous.current is None
            or previous.current.version != workflow.version
        ):
            log.info("loaded workflow %s (version %s)", workflow.name, workflow.version)
        return WorkflowState(folder.name, folder, workflow, None)

    def get(self, name: str) -> Workflow | None:
        state = self._states.get(name)
        return state.current if state else None

    def states(self) -> list[WorkflowState]:
        return list(self._states.values())
