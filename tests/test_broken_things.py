"""Stale and broken things say so where people look: a run of a workflow serving its last
good version warns, a plugin that fails to import is named at the workflow that uses it,
a misspelled tool gets a suggestion, and `tandem check` says each problem once."""

from __future__ import annotations

import json

from conftest import Project, eventually, tandem

ECHO = """
def handler(trigger, tools, virtual_files, subagent):
    return "ok"
"""
CRASHY = '''
import os
from tandem_sdk import tool

DB = os.environ["CRASHY_DB_URL"]

@tool(read_only=True)
def ping() -> str:
    """Answer."""
    return "pong"
'''


def test_a_run_of_a_stale_workflow_warns(project: Project, start_daemon) -> None:
    folder = project.workflow("greet", script=ECHO)
    daemon = start_daemon(project, reload=True)
    assert tandem(project, "run", "greet").returncode == 0
    (folder / "workflow.yaml").write_text((folder / "workflow.yaml").read_text() + "oops: 1\n")

    def stale() -> bool:
        listed = json.loads(tandem(project, "workflows", "--json").stdout)["workflows"]
        return any(w["name"] == "greet" and w["error"] for w in listed)

    assert eventually(stale), daemon.log
    text = tandem(project, "run", "greet")
    assert text.returncode == 0
    assert "warning: workflow greet ran its last good version" in text.stderr
    assert "oops" in text.stderr
    record = json.loads(tandem(project, "run", "greet", "--json").stdout)
    assert record["status"] == "succeeded" and "last good version" in record["warning"]


def test_a_plugin_that_fails_to_import_is_named_at_the_workflow(project: Project) -> None:
    crashy = project.plugin("crashy", CRASHY) / "plugin.py"
    project.workflow("uses_crashy", script=ECHO, tools=["crashy.ping"])
    project.workflow("typo", script=ECHO, tools=["state.incremnt"])
    project.workflow("fine", script=ECHO, tools=["state.get"])
    result = tandem(project, "check")
    assert result.returncode == 1
    errors = result.stderr
    assert "'crashy.ping': plugin 'crashy' failed to load: " in errors
    assert f"{crashy}:5: KeyError: 'CRASHY_DB_URL'" in errors  # the line that raised
    typo = "no plugin provides a tool matching 'state.incremnt' (did you mean state.increment?)"
    assert typo in errors
    lines = errors.splitlines()
    for line in {line for line in lines if line.strip()}:
        assert lines.count(line) == 1, f"said twice: {line}"
    # Running another workflow says nothing about these.
    other = tandem(project, "run", "fine")
    assert other.returncode == 0 and "crashy" not in other.stderr and "typo" not in other.stderr


SYNTAX = '''
from tandem_sdk import tool

@tool(read_only=True)
def ping() -> str:
    """Answer."""
    return "pong" +
'''
UNTYPED = '''
from tandem_sdk import tool


@tool(
    read_only=True,
)
def ping(who) -> str:
    """Answer."""
    return "pong"
'''


def test_a_plugin_load_error_reads_file_line_message(project: Project) -> None:
    syntax = project.plugin("syntax", SYNTAX) / "plugin.py"
    untyped = project.plugin("untyped", UNTYPED) / "plugin.py"
    checked = tandem(project, "check")
    assert checked.returncode == 1
    lines = checked.stderr.splitlines()
    assert f"{syntax}:7: syntax error: invalid syntax" in lines, checked.stderr
    # At the def line, past its decorator.
    assert f"{untyped}:8: function 'ping': parameter 'who' has no type annotation" in lines

    status = tandem(project, "status")
    assert status.returncode == 1, "a plugin that does not load is down"
    assert "plugin syntax           not loaded no pid" in status.stdout, status.stdout
    assert f"{syntax}:7: syntax error: invalid syntax" in status.stdout
    shown = json.loads(tandem(project, "status", "--json").stdout)["plugins"]
    [untyped_status] = [p for p in shown if p["name"] == "untyped"]
    assert untyped_status["up"] is False and untyped_status["load_error"].startswith(
        f"{untyped}:8:"
    )
