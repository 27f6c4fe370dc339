"""`tandem new`: write a working, commented skeleton of a workflow or a plugin.

    scaffold_workflow(config, "triage", coordinator="script")  # workflows/triage/
    scaffold_plugin(config, "jira")                             # plugins/jira/

Each skeleton passes `tandem check` and runs as written, and its test passes as written:
it is the smallest thing that works, commented where a newcomer needs to know more, to be
changed rather than read. A bad or taken name is a ScaffoldError (a TandemError, fields:
path), raised before anything is written; nothing is ever overwritten.
"""

from .base import Scaffold, ScaffoldError
from .plugin import project_plugins_dir, scaffold_plugin
from .workflow import scaffold_workflow

__all__ = [
    "Scaffold",
    "ScaffoldError",
    "project_plugins_dir",
    "scaffold_plugin",
    "scaffold_workflow",
]
