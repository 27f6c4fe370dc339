"""What the cluster tests share: a workflow whose one call is held for approval, so a run
waits (and can be taken over, approved or cancelled) on whichever daemon it started."""

from __future__ import annotations

from conftest import Project

POKE = """
def handler(trigger, tools, virtual_files, subagent):
    return tools.gate.poke()
"""
GATE = '''
from tandem_sdk import tool

@tool()
def poke() -> str:
    """A call with side effects: held for a person's approval."""
    return "poked"
'''


def held_workflow(project: Project) -> None:
    """The `gate` plugin and the `held` workflow, whose call of gate.poke waits for approval."""
    project.plugin("gate", GATE)
    project.workflow("held", script=POKE, tools=["gate.poke"], approvals={"script": ["gate.poke"]})
