"""The host `tandem run` embeds without a daemon: it starts a standby process for each
plugin before its own imports, hands each plugin its standby, and leaves no process
behind, whether a standby was taken, passed over, or the plugin failed to load."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Project
from tandem.client import ControlClient
from tandem.embedded import EmbeddedHost

NOTES = '''
import os
from tandem_sdk import tool

@tool(read_only=True)
def secret() -> str:
    """The token this plugin sees."""
    return os.environ.get("NOTES_TOKEN", "none")
'''
OTHER = '''
from tandem_sdk import tool

@tool(read_only=True)
def ping() -> str:
    """Answer."""
    return "pong"
'''
CALLER = """
def handler(trigger, tools, virtual_files, subagent):
    return [tools.notes.secret(), tools.other_name.ping()]
"""


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _children() -> set[int]:
    """This process's live children."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if int(parent) == me and state != "Z":
            found.add(int(entry.name))
    return found


def test_plugins_start_from_standbys_and_leave_nothing_behind(
    project: Project, monkeypatch
) -> None:
    monkeypatch.setenv("NOTES_TOKEN", "granted")
    project.plugin("notes", NOTES, secrets=["NOTES_TOKEN"])
    # A folder whose manifest names another plugin: its standby, started by folder name,
    # fits no plugin and is stopped; the plugin starts a process of its own.
    renamed = project.plugin("renamed", OTHER)
    (renamed / "plugin.yaml").write_text("name: other_name\n")
    project.plugin("broken", "raise RuntimeError('cannot import')\n")
    project.workflow("caller", script=CALLER, tools=["notes.*", "other_name.*"])
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\n")

    before = _children()
    with EmbeddedHost(project.config) as host:
        plugins = host.host.plugins
        assert set(plugins.plugins) == {"notes", "other_name"}
        assert "cannot import" in plugins.broken["broken"]
        notes_pid, other_pid = plugins.plugins["notes"].pid, plugins.plugins["other_name"].pid
        assert notes_pid is not None and other_pid is not None
        assert "tandem_sdk.plugin_standby" in _argv(notes_pid), "notes took its standby"
        assert "tandem_sdk.plugin_server" in _argv(other_pid), "other_name started its own"
        assert _children() - before == {notes_pid, other_pid}, "no standby is left over"
        data = project.root / ".tandem" / "plugins"
        assert sorted(p.name for p in data.iterdir()) == ["broken", "notes", "other_name"]
        with ControlClient(host.control_socket) as client:
            run_id = client.trigger("caller", None, None)
            for _ in client.watch(run_id):
                pass
            record = client.run(run_id)
        assert (record.status, record.output) == ("succeeded", ["granted", "pong"]), record.error
    assert _children() - before == set()


def test_only_the_named_plugins_get_standbys(project: Project) -> None:
    project.plugin("notes", NOTES)
    project.plugin("other_name", OTHER)
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\n")
    before = _children()
    with EmbeddedHost(project.config, {"notes"}) as host:
        assert set(host.host.plugins.plugins) == {"notes"}
        assert len(_children() - before) == 1
    assert _children() - before == set()
