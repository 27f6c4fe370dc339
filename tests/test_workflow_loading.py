"""Workflows are checked at load: every problem names its file and field, one broken
workflow never stops the others, and a reload keeps the last good version."""

from __future__ import annotations

import json
import os

from conftest import Project, tandem
from tandem.workflows import WorkflowRegistry

GOOD_SCRIPT = "def handler(trigger, tools, virtual_files, subagent):\n    return 'ok'\n"

# name -> (workflow.yaml, extra files, the field the error must name, words it must contain)
MALFORMED = {
    "unknown_key": (
        "coordinator: script\ncoordinator_script: script.py\ncoordinatr: llm\n",
        {"script.py": GOOD_SCRIPT},
        "coordinatr",
        "Extra inputs are not permitted",
    ),
    "missing_script": (
        "coordinator: script\ncoordinator_script: nowhere.py\n",
        {},
        "coordinator_script",
        "nowhere.py",
    ),
    "missing_prompt": ("coordinator: llm\nprompt: prompt.md\n", {}, "prompt", "prompt.md"),
    "no_script_given": ("coordinator: script\n", {}, "coordinator_script", "required"),
    "unknown_tool": (
        "coordinator: script\ncoordinator_script: script.py\ntools: [state.get, nosuch.*]\n",
        {"script.py": GOOD_SCRIPT},
        "tools",
        "'nosuch.*'",
    ),
    "bad_limits": (
        "coordinator: script\ncoordinator_script: script.py\nlimits: {timeout_s: -1}\n",
        {"script.py": GOOD_SCRIPT},
        "limits.timeout_s",
        "greater than 0",
    ),
    "bad_limit_key": (
        "coordinator: script\ncoordinator_script: script.py\nlimits: {timeout: 5}\n",
        {"script.py": GOOD_SCRIPT},
        "limits.timeout",
        "Extra inputs",
    ),
    "bad_cron": (
        "coordinator: script\ncoordinator_script: script.py\ntriggers: [{schedule: 'every day'}]\n",
        {"script.py": GOOD_SCRIPT},
        "triggers.0.schedule",
        "cron",
    ),
    "impossible_cron": (
        "coordinator: script\ncoordinator_script: script.py\n"
        "triggers: [{schedule: '0 0 31 2 *'}]\n",
        {"script.py": GOOD_SCRIPT},
        "triggers.0.schedule",
        "can never fire",
    ),
    "cron_step_out_of_range": (
        "coordinator: script\ncoordinator_script: script.py\n"
        "triggers: [{schedule: '*/61 * * * *'}]\n",
        {"script.py": GOOD_SCRIPT},
        "triggers.0.schedule",
        "minute step /61 is out of range",
    ),
    "webhook_without_secret": (
        "coordinator: script\ncoordinator_script: script.py\n"
        "triggers: [{webhook: {path: /hooks/x}}]\n",
        {"script.py": GOOD_SCRIPT},
        "triggers.0.webhook.secret_env",
        "Field required",
    ),
    "bad_coordinator": (
        "coordinator: robot\n",
        {},
        "coordinator",
        "'llm' or 'script'",
    ),
    "syntax_error": (
        "coordinator: script\ncoordinator_script: script.py\n",
        {"script.py": "def handler(trigger, tools, virtual_files, subagent)\n    return 1\n"},
        "line 1",
        "syntax error",
    ),
    "no_handler": (
        "coordinator: script\ncoordinator_script: script.py\n",
        {"script.py": "def main():\n    pass\n"},
        "handler",
        "define handler",
    ),
    "name_mismatch": (
        "name: other\ncoordinator: script\ncoordinator_script: script.py\n",
        {"script.py": GOOD_SCRIPT},
        "name",
        "folder name",
    ),
    "not_yaml": ("coordinator: [script\n", {}, "", "cannot read"),
    "file_outside": (
        "coordinator: script\ncoordinator_script: script.py\n"
        "files: {secret: ../../../etc/passwd}\n",
        {"script.py": GOOD_SCRIPT},
        "files.secret",
        "'..'",
    ),
    "bad_input_schema": (
        "coordinator: script\ncoordinator_script: script.py\n"
        "input_schema: {type: object, properties: {name: {type: strin}}}\n",
        {"script.py": GOOD_SCRIPT},
        "input_schema.properties.name.type",
        "not a valid JSON Schema: 'strin'",
    ),
    "remote_input_schema": (
        "coordinator: script\ncoordinator_script: script.py\n"
        "input_schema: {$ref: 'https://example.com/payload.json'}\n",
        {"script.py": GOOD_SCRIPT},
        "input_schema",
        "outside itself",
    ),
    "bad_virtual_path": (
        "coordinator: script\ncoordinator_script: script.py\nfiles: {/abs/path: script.py}\n",
        {"script.py": GOOD_SCRIPT},
        "files./abs/path",
        "absolute",
    ),
}


def _write_all(project: Project) -> None:
    project.workflow("fine", script=GOOD_SCRIPT, tools=["state.get"])
    for name, (yaml_text, files, _, _) in MALFORMED.items():
        project.raw_workflow(name, yaml_text, **files)


def test_check_names_file_and_field_for_every_problem(project: Project) -> None:
    _write_all(project)
    result = tandem(project, "check")
    assert result.returncode == 1
    assert "ok     workflow fine" in result.stdout
    for name, (_, _, field, words) in MALFORMED.items():
        lines = [line for line in result.stderr.splitlines() if f"/{name}/" in line]
        assert lines, f"no error reported for {name}:\n{result.stderr}"
        text = "\n".join(lines)
        assert field in text and words in text, f"{name}: {text}"


def test_broken_workflows_do_not_stop_the_others(project: Project, start_daemon) -> None:
    _write_all(project)
    daemon = start_daemon(project)
    assert daemon.run("fine").output == "ok"
    listed = json.loads(tandem(project, "workflows", "--json").stdout)["workflows"]
    states = {w["name"]: (w["loaded"], bool(w["error"])) for w in listed}
    assert states["fine"] == (True, False)
    assert all(states[name] == (False, True) for name in MALFORMED)
    result = tandem(project, "run", "bad_limits")
    assert result.returncode == 2
    assert "limits.timeout_s" in result.stderr


def test_symlink_leaving_the_folder_is_rejected(project: Project, tmp_path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    folder = project.workflow("linked", script=GOOD_SCRIPT, files={"ok.md": "fine"})
    os.symlink(outside, folder / "files" / "link.md")
    spec = (
        (folder / "workflow.yaml")
        .read_text()
        .replace("ok.md: files/ok.md", "ok.md: files/ok.md\n  link.md: files/link.md")
    )
    (folder / "workflow.yaml").write_text(spec)
    registry = WorkflowRegistry(project.root / "workflows", lambda: set())
    errors = registry.reload()
    assert len(errors) == 1
    assert "files.link.md" in str(errors[0]) and "outside the workflow folder" in str(errors[0])


def test_reload_keeps_the_last_good_version(project: Project) -> None:
    folder = project.workflow("evolving", script=GOOD_SCRIPT)
    registry = WorkflowRegistry(project.root / "workflows", lambda: set())
    assert registry.reload() == []
    good = registry.get("evolving")
    assert good is not None

    (folder / "script.py").write_text("def handler(:\n")
    errors = registry.reload()
    assert len(errors) == 1 and "syntax error" in str(errors[0])
    assert registry.get("evolving") is good, "the last good version is still served"
    state = registry.states()[0]
    assert state.error is not None

    (folder / "script.py").write_text(GOOD_SCRIPT.replace("'ok'", "'better'"))
    assert registry.reload() == []
    newer = registry.get("evolving")
    assert newer is not None and newer.version != good.version
    assert newer.script_source is not None and "better" in newer.script_source


PATH_ATTACKS = [
    "../workflow.yaml",
    "/etc/passwd",
    "files/../../x",
    "a\x00b",
    "",
    ".",
    "..\\x",
    "C:x",
]


def test_virtual_file_path_attacks(project: Project, start_daemon) -> None:
    project.workflow(
        "reader",
        files={"notes.md": "hi"},
        script="""
        from tandem_sdk import errors
        def handler(trigger, tools, virtual_files, subagent):
            outcomes = {}
            for path in trigger["paths"]:
                try:
                    outcomes[path] = {"read": virtual_files.read(path)}
                except errors.InterfaceError as error:
                    outcomes[path] = {"error": type(error).__name__, "message": str(error)}
            return outcomes
        """,
    )
    record = start_daemon(project).run("reader", {"paths": PATH_ATTACKS})
    assert record.status == "succeeded", record.error
    assert set(record.output) == set(PATH_ATTACKS)
    for path, outcome in record.output.items():
        assert outcome.get("error") in {"InvalidArguments", "NotFound"}, (path, outcome)
    assert record.output["../workflow.yaml"]["error"] == "InvalidArguments"
    assert "'..'" in record.output["../workflow.yaml"]["message"]
    assert "absolute" in record.output["/etc/passwd"]["message"]
    assert "NUL" in record.output["a\x00b"]["message"]


def test_virtual_files_read_by_script_and_built_in_tool(project: Project, start_daemon) -> None:
    project.workflow(
        "reader",
        files={"notes.md": "hi there"},
        tools=["files.*"],
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            return {
                "listed": list(virtual_files),
                "read": virtual_files["notes.md"],
                "normalised": virtual_files.read("./notes.md"),
                "tool_list": tools.files.list(),
                "tool_read": tools.files.read(path="notes.md"),
            }
        """,
    )
    record = start_daemon(project).run("reader")
    assert record.output == {
        "listed": ["notes.md"],
        "read": "hi there",
        "normalised": "hi there",
        "tool_list": ["notes.md"],
        "tool_read": "hi there",
    }
