"""`tandem new`: write a working, commented skeleton of a workflow or a plugin.

    scaffold_workflow(config, "triage", coordinator="script")  # workflows/triage/
    scaffold_plugin(config, "jira")                             # plugins/jira/

Each skeleton passes `tandem check` and runs as written, and its test passes as written:
it is the smallest thing that works, commented where a newcomer needs to know more, to be
changed rather than read. A project without a pytest configuration gets a pytest.ini that
imports test files in importlib mode, so plain `pytest` at its root collects every
skeleton's tests together (pytest_config.py). A bad or taken name is a ScaffoldError (a
TandemError, fields: path), raised before anything is written; nothing is ever
overwritten.
"""

from .base import Scaffold, ScaffoldError
from .plugin import project_plugins_dir, scaffold_plugin
from .pytest_config import PytestConfig, ensure_pytest_config
from .workflow import scaffold_workflow

__all__ = [
    "PytestConfig",
    "Scaffold",
    "ScaffoldError",
    "ensure_pytest_config",
    "project_plugins_dir",
    "scaffold_plugin",
    "scaffold_workflow",
]
