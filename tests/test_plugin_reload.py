"""Plugins hot-reload with the daemon running: an edit is served by the next run, a
broken edit leaves the old process serving and says why, new and removed plugin folders
are picked up, and every run's trace names the plugin code that served it."""

from __future__ import annotations

import textwrap

from conftest import Project, eventually, tandem

NOTES = '''
from tandem_sdk import tool

@tool(read_only=True)
def word() -> str:
    """A word."""
    return "{word}"
'''
CALLER = """
def handler(trigger, tools, virtual_files, subagent):
    return tools.notes.word()
"""


def _versions(record) -> list[str]:
    return [e.data["plugin_version"] for e in record.events if e.kind == "tool.call"]


def test_plugin_edits_are_served_by_the_next_run(project: Project, start_daemon) -> None:
    folder = project.plugin("notes", NOTES.format(word="one"))
    project.workflow("caller", script=CALLER, tools=["notes.*"])
    daemon = start_daemon(project, reload=True)
    first = daemon.run("caller")
    assert first.output == "one"
    [v1] = _versions(first)
    assert f"plugins: notes {v1}" in tandem(project, "runs", "show", first.id).stdout

    (folder / "plugin.py").write_text(textwrap.dedent(NOTES.format(word="two")))
    assert eventually(lambda: any("reloaded notes" in line for line in daemon.log)), daemon.log
    second = daemon.run("caller")
    assert second.output == "two"
    [v2] = _versions(second)
    assert v2 != v1

    (folder / "plugin.py").write_text("raise RuntimeError('half-saved file')\n")
    # The plugin's own stderr reaches the log first; the verdict follows it.
    assert eventually(
        lambda: any("the old keeps serving" in line and "half-saved" in line for line in daemon.log)
    ), daemon.log
    third = daemon.run("caller")
    assert (third.output, _versions(third)) == ("two", [v2]), "the old process serves on"
    listed = tandem(project, "workflows").stdout
    assert "plugin error" in listed and "half-saved file" in listed


def test_new_and_removed_plugin_folders(project: Project, start_daemon) -> None:
    project.workflow("caller", script=CALLER, tools=["notes.*"])
    daemon = start_daemon(project, reload=True)
    assert "notes" in tandem(project, "workflows").stdout  # fails to load: no such plugin
    project.plugin("notes", NOTES.format(word="new"))
    assert eventually(lambda: any("started notes" in line for line in daemon.log)), daemon.log
    assert eventually(lambda: daemon.run("caller").output == "new")
    import shutil

    shutil.rmtree(project.root / "plugins" / "notes")
    assert eventually(lambda: any("removed notes" in line for line in daemon.log)), daemon.log
    assert "notes" not in tandem(project, "tools").stdout
