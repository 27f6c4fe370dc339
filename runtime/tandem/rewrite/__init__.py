"""`tandem rewrite WORKFLOW`: the model writes a workflow's script.py from its prompt, and
the workflow's recorded runs decide whether it is accepted.

    material.py     gather: yaml, prompt, tools in scope, virtual files, a sample of runs
    render.py       the material as markdown: the model's request, or a brief (--brief)
    instructions.py the SDK's surface, the rule of acceptance, the model's system prompt
    model.py        ask the model; take the script from its one ```python block
    validate.py     replay every recorded run through a candidate folder; judge each
    yaml_edit.py    switch workflow.yaml to the script, keeping its comments
    write.py        script.candidate.py; with --write: script.py, yaml, fixtures, a test

The command itself is `tandem.cli.rewrite`.
"""

from .errors import RewriteError
from .material import Material, gather
from .model import Conversation, extract_script
from .render import brief_markdown, material_markdown
from .validate import Verdict, judge, table, validate, write_candidate
from .write import write_accepted, write_candidate_file
from .yaml_edit import set_script_coordinator

__all__ = [
    "Conversation",
    "Material",
    "RewriteError",
    "Verdict",
    "brief_markdown",
    "extract_script",
    "gather",
    "judge",
    "material_markdown",
    "set_script_coordinator",
    "table",
    "validate",
    "write_accepted",
    "write_candidate",
    "write_candidate_file",
]
