"""`tandem new workflow NAME [--coordinator llm|script]` and `tandem new plugin NAME`:
write a working, commented skeleton into the project, then say what to try next.

A workflow goes into the project's workflows folder, a plugin into its own plugins folder
(never the built-in one, unless this is Tandem's own repository). Nothing is overwritten:
a bad or taken name is a usage error (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, UsageError

if TYPE_CHECKING:  # the scaffolds are imported when `tandem new` runs, not by every command
    from tandem.config import ProjectConfig
    from tandem.scaffold import Scaffold

PAYLOAD = '{"name": "Ada"}'


def add_parser(commands: Any) -> None:
    new = commands.add_parser(
        "new", help="write a working, commented skeleton of a workflow or a plugin"
    )
    kinds = new.add_subparsers(dest="new_kind", required=True, metavar="workflow|plugin")
    workflow = kinds.add_parser(
        "workflow",
        help="workflows/NAME/: workflow.yaml, a script or a prompt, a virtual file, a test",
    )
    workflow.add_argument("name", help="lower case letters, digits, _ and -; the folder's name")
    workflow.add_argument(
        "--coordinator",
        choices=["script", "llm"],
        default="script",
        help="who decides the tool calls (default: script, which runs without a model key)",
    )
    plugin = kinds.add_parser(
        "plugin", help="plugins/NAME/: plugin.yaml, plugin.py with two typed tools, a test"
    )
    plugin.add_argument("name", help="lower_snake_case; its tools are called NAME.<function>")


def cmd_new(config: ProjectConfig, args: argparse.Namespace) -> int:
    from tandem.scaffold import ScaffoldError, scaffold_plugin, scaffold_workflow

    try:
        if args.new_kind == "workflow":
            made = scaffold_workflow(config, args.name, args.coordinator)
        else:
            made = scaffold_plugin(config, args.name)
    except ScaffoldError as error:
        raise UsageError(str(error)) from None
    what = f"workflow {made.name} (coordinator: {made.coordinator})"
    print(f"wrote {what if made.kind == 'workflow' else f'plugin {made.name}'}:")
    for path in (made.files[-1], *made.files[:-1]):  # the manifest, written last, first
        print(f"  {_shown(path)}")
    tests = made.pytest_config
    if tests is not None and (note := tests.note()) is not None:
        if tests.written:
            print(f"  {note}")
        else:
            print(f"tandem: note: {note}", file=sys.stderr)
    print("next:")
    for line in next_steps(made, _tandem(args)):
        print(f"  {line}")
    return EXIT_OK


def next_steps(made: Scaffold, tandem: str) -> list[str]:
    tests = _shown(made.folder / "tests")
    if made.kind == "plugin":
        return [
            f"{tandem} check",
            f"{tandem} tools   # {made.name}.lookup and {made.name}.remember among them",
            f"pytest {tests}",
            f"then: {made.name}.* in a workflow's `tools:`, and in its script"
            f' tools.{made.name}.remember(key="k", text="a note")',
            "(a running `tandem serve` with hot reload starts the new plugin by itself)",
        ]
    payload = shlex.quote(PAYLOAD)
    if made.coordinator == "llm":
        return [
            f"{tandem} check",
            f"{tandem} tools {made.name}   # its scope; runs add files.list and files.read",
            f"ANTHROPIC_API_KEY=... {tandem} run {made.name} --payload {payload} --follow",
        ]
    return [
        f"{tandem} check",
        f"{tandem} run {made.name} --payload {payload} --follow",
        f"pytest {tests}",
    ]


def _tandem(args: argparse.Namespace) -> str:
    """`tandem` with the global options this command was given, so the lines can be pasted."""
    words = ["tandem"]
    for option, attribute in (("--project", "project"), ("--workflows", "workflows")):
        if (value := getattr(args, attribute, None)) is not None:
            words += [option, str(value)]
    for folder in getattr(args, "plugins", None) or []:
        words += ["--plugins", str(folder)]
    if (state := getattr(args, "state", None)) is not None:
        words += ["--state", str(state)]
    return shlex.join(words)


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is under it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
