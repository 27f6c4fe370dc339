"""`tandem new plugin NAME`: a plugin with one read-only tool and one with side effects,
notes kept per workflow in the plugin's own data folder, and a test that calls the tools
as the plugin process does, without a daemon.
"""

from __future__ import annotations

from pathlib import Path

from tandem_sdk.plugin import NAME_PATTERN

from tandem.config import ProjectConfig, builtin_plugins_dir
from tandem.files_tools import PROVIDER as FILES_PROVIDER
from tandem.plugins.manifest import MANIFEST_FILE, find_plugins

from .base import Scaffold, ScaffoldError, check_name, commented, fill, write_new_folder
from .pytest_config import ensure_pytest_config

MAX_NAME = 32  # as PluginManifest.name

PLUGIN_YAML = """\
# A Tandem plugin. The host reads this file without importing plugin.py.
__NAME_LINE__
version: 0.1.0
description: Keep short notes per workflow (a skeleton to replace with your own tools)
module: plugin.py            # the module whose @tool functions are the tools
secrets: []                  # the daemon's environment variables this plugin may see, e.g.
                             # [__ENV___API_TOKEN]; it also gets PATH, LANG, HOME and
                             # TANDEM_PLUGIN_DATA, and nothing else
call_timeout_s: 30           # a call that takes longer fails with ToolTimeout
"""

PLUGIN_PY = '''\
"""Keep short notes per workflow: a Tandem plugin skeleton to replace with your tools.

Each @tool function is a tool, which scripts and the model alike call by one name:
`__NAME__.<function>`. Its JSON schema comes from the signature and the
docstring's Args, so both are what the model reads. A tool for an outside service would
read its token from a secret that plugin.yaml names, as
`os.environ["__ENV___API_TOKEN"]`.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from tandem_sdk import RunContext, tool
from tandem_sdk.errors import ToolError

_lock = threading.Lock()  # the plugin process serves calls on several threads


def _notes_file() -> Path:
    # A folder of this plugin's own under the state folder, kept across runs.
    return Path(os.environ.get("TANDEM_PLUGIN_DATA", ".")) / "notes.json"


def _read_notes() -> dict[str, dict[str, str]]:
    path = _notes_file()
    notes: dict[str, dict[str, str]] = (
        json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    )
    return notes


# read_only: it changes nothing, so dry runs and replays may call it. open_world=False:
# it reaches only its own store (leave it out for a tool that calls another service).
@tool(read_only=True, open_world=False)
def lookup(key: str, ctx: RunContext) -> str | None:
    """Read the note kept under a key for the calling workflow, or None when there is none.

    Args:
        key: the note's key.
    """
    with _lock:
        return _read_notes().get(ctx.workflow, {}).get(key)


# Side effects: a dry run plans this call instead of making it. Not destructive (it never
# overwrites) and idempotent (a repeat changes nothing more).
@tool(destructive=False, idempotent=True, open_world=False)
def remember(key: str, text: str, ctx: RunContext) -> bool:
    """Keep a note under a key for the calling workflow, unless the key has one already.
    True when this call kept it; False when the key had a note, which stays as it was.

    Args:
        key: the note's key.
        text: the note; not empty.
    """
    if not text.strip():
        # Callers can match on the type; any other exception is a ToolError too, typed by
        # its class name. Either way it is the caller's result, not a crash.
        raise ToolError("the note is empty", type="empty_note")
    with _lock:
        notes = _read_notes()
        kept = notes.setdefault(ctx.workflow, {})
        if key in kept:
            return False
        kept[key] = text
        path = _notes_file()
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(notes), encoding="utf-8")
        partial.replace(path)  # whole or not at all, even if the process dies mid-write
        return True
'''

TEST_PLUGIN = '''\
"""plugin.py's tools called as the plugin process calls them, without a daemon:
arguments as JSON text, validated against each tool's schema, and a RunContext naming the
calling run and workflow.
"""

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
from tandem_sdk import RunContext, ToolError
from tandem_sdk.plugin import ToolDefinition
from tandem_sdk.plugin_server import collect_tools, load_module

PLUGIN = "__NAME__"
MODULE = Path(__file__).parent.parent / "plugin.py"
RUN = RunContext(run_id="test-run", workflow="example")


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, ToolDefinition]:
    monkeypatch.setenv("TANDEM_PLUGIN_DATA", str(tmp_path))  # as the host sets it
    return collect_tools(PLUGIN, load_module(PLUGIN, MODULE))


def call(tools: dict[str, ToolDefinition], name: str, run: RunContext = RUN, **args: Any) -> Any:
    return tools[name].invoke(json.dumps(args), run)


def test_the_tools_say_what_they_do(tools: dict[str, ToolDefinition]) -> None:
    assert set(tools) == {"lookup", "remember"}
    assert tools["lookup"].annotations.read_only
    remember = tools["remember"].annotations
    assert not remember.read_only and not remember.destructive and remember.idempotent
    assert tools["remember"].input_schema["required"] == ["key", "text"]


def test_a_note_is_kept_once_per_workflow(tools: dict[str, ToolDefinition]) -> None:
    assert call(tools, "lookup", key="greeting") is None
    assert call(tools, "remember", key="greeting", text="hello") is True
    assert call(tools, "remember", key="greeting", text="changed") is False
    assert call(tools, "lookup", key="greeting") == "hello"
    other = RunContext(run_id="test-run-2", workflow="other")
    assert call(tools, "lookup", other, key="greeting") is None


def test_bad_arguments_and_tool_errors(tools: dict[str, ToolDefinition]) -> None:
    with pytest.raises(pydantic.ValidationError):  # the host refuses these before a call
        call(tools, "remember", key="greeting")
    with pytest.raises(ToolError) as refused:
        call(tools, "remember", key="greeting", text="  ")
    assert refused.value.type == "empty_note"
'''


def project_plugins_dir(config: ProjectConfig) -> Path:
    """The project's own plugins folder: the first one configured that is not the
    built-in plugins', else PROJECT/plugins (which, in Tandem's own repository, is the
    built-in one)."""
    builtin = builtin_plugins_dir().resolve()
    own = [folder for folder in config.plugins_dirs if folder.resolve() != builtin]
    return own[0] if own else config.root / "plugins"


def scaffold_plugin(config: ProjectConfig, name: str) -> Scaffold:
    """Write `plugins/NAME/`; ScaffoldError when the name is bad, reserved or taken."""
    check_name(
        "plugin",
        name,
        NAME_PATTERN,
        MAX_NAME,
        "lower_snake_case (letters, digits and single _, starting with a letter)",
    )
    if name == FILES_PROVIDER:
        raise ScaffoldError(f"{name!r} is reserved: files.list and files.read are built in")
    folder = project_plugins_dir(config) / name
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists; choose another name", path=folder)
    manifests, _ = find_plugins(config.plugins_dirs)
    taken = next((m for m in manifests if m.name == name), None)
    if taken is not None:
        raise ScaffoldError(
            f"a plugin named {name!r} is already in {taken.folder}; a second would override"
            " its tools: choose another name",
            path=folder,
        )
    values = {
        "name_line": commented(f"name: {name}", f"its tools are called {name}.<function>", 29),
        "name": name,
        "env": name.upper(),
    }
    files = {
        MANIFEST_FILE: fill(PLUGIN_YAML, **values),
        "plugin.py": fill(PLUGIN_PY, **values),
        "tests/test_plugin.py": fill(TEST_PLUGIN, **values),
    }
    written = write_new_folder(folder, files, MANIFEST_FILE)
    return Scaffold(
        "plugin", name, folder, written, pytest_config=ensure_pytest_config(config.root)
    )
