"""`tandem new workflow NAME`: a workflow that greets the person its trigger names and
counts the greetings with the built-in `state` plugin, reading its message from a virtual
file. The script skeleton ships a test that replays a hand-written fixture of exactly the
calls the script makes; the llm skeleton has no test (a model's runs are tested by
recording them), and its workflow.yaml says so.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tandem.config import ProjectConfig
from tandem.replay.fixtures import FIXTURE_TEST_BODY
from tandem.workflows.loader import WORKFLOW_FILE
from tandem.workflows.spec import DEFAULT_MODEL

from .base import Scaffold, ScaffoldError, check_name, commented, fill, write_new_folder
from .pytest_config import ensure_pytest_config

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")  # as WorkflowSpec.name
MAX_NAME = 64
COORDINATORS = ("script", "llm")

MESSAGE = "Hello, {name}! This is greeting number {count}.\n"

WORKFLOW_YAML = """\
# A Tandem workflow. `tandem check` validates this file; unknown keys are errors.
__NAME_LINE__
description: Greet the person the trigger names and count the greetings (a skeleton)
triggers:                       # what starts a run; default [manual: {}]
  - manual: {}                  # tandem run __NAME__ --payload '{"name": "Ada"}'
  # - schedule: "*/10 * * * *"  # cron, fired while `tandem serve` runs
  # - webhook: {path: /hooks/__NAME__, secret_env: __ENV___SECRET}  # tandem serve --http
input_schema:                   # JSON Schema of a manual run's payload: checked before it
  type: object                  # runs, shown to the model and by `tandem workflows`
  properties:
    name: {type: string, description: who to greet}
  additionalProperties: false
__COORDINATOR__
__MODEL_LINE__
tools: [state.*]                # the tools in scope, globs allowed: tandem tools __NAME__
files:                          # virtual files: virtual path -> file in this folder
  message.md: files/message.md
limits: {timeout_s: 30, max_tool_calls: 20}  # also max_turns, max_tokens, memory_mb
__TESTS__
"""

# Switching coordinators: write the other file, uncomment its line, change `coordinator:`.
# With both lines, `tandem run NAME --coordinator llm|script` tries either for one run.
SCRIPT_COORDINATOR = """\
coordinator: script             # llm | script: who decides which tools to call
coordinator_script: script.py   # handler(trigger, tools, virtual_files, subagent)
# prompt: prompt.md             # for coordinator: llm; write prompt.md, then uncomment"""

LLM_COORDINATOR = """\
coordinator: llm                # llm | script: who decides which tools to call
prompt: prompt.md               # the model's instructions; needs ANTHROPIC_API_KEY
# coordinator_script: script.py # for coordinator: script; write script.py, then uncomment"""

SCRIPT_TESTS = """\
# tests/test_script.py replays tests/fixtures/*.json against script.py offline (pytest)."""

LLM_TESTS = """\
# No tests/: nothing offline can say what a model will do; its recorded runs are the
# evidence. `tandem rewrite __NAME__ --write` drafts script.py from them, validated by
# replaying them, and writes them to tests/fixtures/ with a tests/test_script.py."""

SCRIPT_PY = '''\
"""Greet the person the trigger names and count the greetings, across runs.

A skeleton to replace with your workflow. The host calls `handler` once per run, in a
sandboxed process; everything it does goes through `tools`, `virtual_files` and
`subagent`, and lands in the run's trace (`tandem runs show RUN_ID`).
"""


def handler(trigger, tools, virtual_files, subagent):
    # The run's payload: `--payload` JSON for a manual run, valid against workflow.yaml's
    # input_schema (checked before the run starts); a schedule's or webhook's is not.
    name = trigger.get("name", "world") if isinstance(trigger, dict) else "world"
    # A tool in scope (workflow.yaml `tools:`), keyword arguments only; the answer is
    # JSON. The built-in state plugin keeps values per workflow, across runs.
    count = tools.state.increment(key=f"greeted:{name}")
    # A file declared under `files:` in workflow.yaml, by its virtual path.
    template = virtual_files["message.md"]
    # subagent("Summarise this", input=...) would ask the model for help (it needs a key).
    # The return value is the run's output; an exception fails the run.
    return {"message": template.format(name=name, count=count).strip(), "count": count}
'''

PROMPT_MD = """\
You greet the person named in the trigger payload (its `name` field; "world" when there
is none) and keep count of how many times each person has been greeted.

1. Add one to the counter `greeted:<name>` with the `state.increment` tool; it returns
   the new count.
2. Read the virtual file `message.md` with the `files.read` tool. It is a template with
   `{name}` and `{count}` placeholders.
3. Answer with the template filled in, and nothing else.
"""

TEST_SCRIPT = (
    '''\
"""script.py replayed against recorded runs, offline: each tool call is answered from
the fixture, and no tool runs (no daemon, no state).

`tandem new` wrote fixtures/example.json by hand: the calls the skeleton makes. As the
script grows, export real runs here (`tandem runs export RUN_ID DIR`) and flag wrong
ones (`tandem runs flag RUN_ID "why" --call N`): a flagged fixture is a regression test,
passed by making every recorded call but the flagged ones.
"""

'''
    + FIXTURE_TEST_BODY
)


def example_fixture(name: str) -> dict[str, Any]:
    """A recording of SCRIPT_PY's run on `{"name": "Ada"}` (fixture format version 1):
    the one tool call it makes, answered with a count no fresh state would give, and its
    output. Keep it in step with SCRIPT_PY and MESSAGE."""
    count = 3
    return {
        "fixture": 1,
        "run": "example",
        "workflow": name,
        "workflow_version": "",
        "coordinator": "script",  # so the replay compares the output too
        "status": "succeeded",
        "trigger": {"name": "Ada"},
        "files": {"message.md": MESSAGE},
        "calls": [
            {"tool": "state.increment", "arguments": {"key": "greeted:Ada"}, "result": count}
        ],
        "subagent_calls": [],
        "output": {"message": MESSAGE.format(name="Ada", count=count).strip(), "count": count},
        "flagged": None,
    }


def with_script_notes(text: str, name: str) -> str:
    """workflow.yaml's text with the llm skeleton's note that there are no tests replaced
    by the script skeleton's, once `tandem rewrite --write` gave the workflow a script and
    tests. Text that does not hold the note is returned as it is."""
    return text.replace(fill(LLM_TESTS, name=name), SCRIPT_TESTS)


def scaffold_workflow(config: ProjectConfig, name: str, coordinator: str = "script") -> Scaffold:
    """Write `workflows/NAME/` for the chosen coordinator; ScaffoldError when the name is
    bad or taken."""
    check_name(
        "workflow",
        name,
        NAME_PATTERN,
        MAX_NAME,
        "lower case letters, digits, _ and -, starting with a letter or digit",
    )
    if coordinator not in COORDINATORS:
        raise ScaffoldError(f"coordinator {coordinator!r}: expected one of {COORDINATORS}")
    folder = config.workflows_dir / name
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists; choose another name", path=folder)
    script = coordinator == "script"
    values = {
        "name_line": commented(f"name: {name}", "must equal the folder's name", 32),
        "name": name,
        "env": name.upper().replace("-", "_"),
        "model_line": commented(
            f"# model: {DEFAULT_MODEL}", "the default; for the llm coordinator and subagents", 32
        ),
    }
    spec = fill(
        WORKFLOW_YAML,
        coordinator=SCRIPT_COORDINATOR if script else LLM_COORDINATOR,
        tests=SCRIPT_TESTS if script else LLM_TESTS,
    )
    files = {WORKFLOW_FILE: fill(spec, **values), "files/message.md": MESSAGE}
    if script:
        files["script.py"] = SCRIPT_PY
        files["tests/test_script.py"] = TEST_SCRIPT
        fixture = json.dumps(example_fixture(name), indent=2, ensure_ascii=False) + "\n"
        files["tests/fixtures/example.json"] = fixture
    else:
        files["prompt.md"] = PROMPT_MD
    written = write_new_folder(folder, files, manifest=WORKFLOW_FILE)
    # Also for an llm workflow: `tandem rewrite --write` gives it tests/test_script.py.
    tested = ensure_pytest_config(config.root)
    return Scaffold("workflow", name, folder, written, coordinator, tested)
