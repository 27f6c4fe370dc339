"""Plugins hot-reload with the daemon running: an edit is served by the next run, a
broken edit leaves the old process serving and says why, new and removed plugin folders
are picked up, and every run's trace names the plugin code that served it."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

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
    error = f"{folder / 'plugin.py'}:1: RuntimeError: half-saved file"
    assert f"plugin error: {error}" in listed
    status = tandem(project, "status")
    assert status.returncode == 0, "the old code serves: the plugin is up"
    assert "its new code does not load; the code before serves on" in status.stdout
    assert f"    {error}\n" in status.stdout, status.stdout
    plugins = json.loads(tandem(project, "status", "--json").stdout)["plugins"]
    [notes] = [p for p in plugins if p["name"] == "notes"]
    assert (notes["up"], notes["load_error"]) == (True, error)

    (folder / "plugin.py").write_text(textwrap.dedent(NOTES.format(word="three")))
    assert eventually(lambda: daemon.run("caller").output == "three"), daemon.log
    assert "does not load" not in tandem(project, "status").stdout, "fixed: said no more"


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


SLOW = '''
import os, pathlib, time
from tandem_sdk import tool

@tool(read_only=True)
def word() -> str:
    """A word."""
    return "{word}"

@tool(read_only=True)
def slow_word() -> str:
    """The word, once the test lets the call finish."""
    data = pathlib.Path(os.environ["TANDEM_PLUGIN_DATA"])
    (data / "started").write_text("")
    deadline = time.monotonic() + 25
    while not (data / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "{word}"

@tool(read_only=True)
def pid() -> int:
    """The serving process."""
    return os.getpid()
'''


SECRET = '''
@tool(read_only=True)
def secret() -> str:
    """The token this plugin sees."""
    import os
    return os.environ.get("NOTES_TOKEN", "none")

@tool(read_only=True)
def other() -> str:
    """A variable the manifest does not name."""
    import os
    return os.environ.get("OTHER_SECRET", "absent")
'''
PEEK = """
def handler(trigger, tools, virtual_files, subagent):
    return [tools.notes.word(), tools.notes.secret(), tools.notes.other()]
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_call_in_flight_finishes_on_the_old_code(project: Project, start_daemon) -> None:
    folder = project.plugin("notes", SLOW.format(word="old"))
    project.workflow(
        "slow",
        tools=["notes.*"],
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            return tools.notes.slow_word()
        """,
    )
    project.workflow(
        "quick",
        tools=["notes.*"],
        script="""
        def handler(trigger, tools, virtual_files, subagent):
            return {"word": tools.notes.word(), "pid": tools.notes.pid()}
        """,
    )
    daemon = start_daemon(project, reload=True)
    old_pid = daemon.run("quick").output["pid"]
    data = project.root / ".tandem" / "plugins" / "notes"
    started = data / "started"
    slow_run = daemon.client.trigger("slow", None, None)
    assert eventually(started.exists), "the slow call never reached the plugin"

    (folder / "plugin.py").write_text(textwrap.dedent(SLOW.format(word="new")))
    assert eventually(lambda: any("reloaded notes" in line for line in daemon.log)), daemon.log
    quick = daemon.run("quick").output
    assert quick["word"] == "new" and quick["pid"] != old_pid, "new calls reach the new code"
    assert _alive(old_pid), "the old process still serves the call in flight"

    (data / "release").write_text("")
    for _ in daemon.client.watch(slow_run):
        pass
    slow = daemon.client.run(slow_run)
    assert (slow.status, slow.output) == ("succeeded", "old"), slow.error
    assert eventually(lambda: not _alive(old_pid)), "the old process stops once it is idle"


def _standbys(daemon) -> list[int]:
    """The daemon's children waiting to serve a plugin's next code (a standby that took
    the code serves under its own name: the plugins' pids say which)."""
    from tandem_sdk._pb import control_pb2

    health = daemon.client.stub.Health(control_pb2.HealthRequest())
    serving = {plugin.pid for plugin in health.plugins}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        standby = b"tandem_sdk.plugin_standby" in argv and int(entry.name) not in serving
        if standby and int(parent) == daemon.process.pid and state != "Z":
            found.append(int(entry.name))
    return found


def _reloaded_pids(daemon) -> list[int]:
    return [
        int(m.group(1))
        for line in daemon.log
        if (m := re.search(r"plugin notes reloaded \(version \w+, pid (\d+)\)", line))
    ]


def test_a_standby_process_takes_the_next_change(project: Project, start_daemon) -> None:
    folder = project.plugin("notes", NOTES.format(word="one") + SECRET, secrets=["NOTES_TOKEN"])
    project.workflow("caller", script=CALLER, tools=["notes.*"])
    project.workflow("peek", script=PEEK, tools=["notes.*"])
    daemon = start_daemon(project, reload=True, env={"NOTES_TOKEN": "t", "OTHER_SECRET": "x"})
    assert _standbys(daemon) == [], "a plugin nobody edits has no standby"

    (folder / "plugin.py").write_text(textwrap.dedent(NOTES.format(word="two") + SECRET))
    assert eventually(lambda: daemon.run("caller").output == "two")
    assert eventually(lambda: len(_standbys(daemon)) == 1), daemon.log
    [standby] = _standbys(daemon)
    environ = Path(f"/proc/{standby}/environ").read_text()
    assert "NOTES_TOKEN" not in environ and "OTHER_SECRET" not in environ, "no secret yet"

    (folder / "plugin.py").write_text(textwrap.dedent(NOTES.format(word="three") + SECRET))
    assert eventually(lambda: daemon.run("caller").output == "three")
    assert _reloaded_pids(daemon)[-1] == standby, "the standby process serves the new code"
    assert daemon.run("peek").output == ["three", "t", "absent"], "with the plugin's secrets"

    # Broken code consumes a standby too; the old process serves on, the fix is served.
    (folder / "plugin.py").write_text("raise RuntimeError('half-saved file')\n")
    assert eventually(lambda: any("half-saved" in line for line in daemon.log)), daemon.log
    assert daemon.run("caller").output == "three"
    (folder / "plugin.py").write_text(textwrap.dedent(NOTES.format(word="four")))
    assert eventually(lambda: daemon.run("caller").output == "four")

    assert eventually(lambda: len(_standbys(daemon)) == 1), daemon.log
    [last] = _standbys(daemon)
    daemon.client.close()
    daemon.terminate()
    assert eventually(lambda: not _alive(last)), "the standby stops with the daemon"


def test_a_changed_manifest_gets_its_own_secrets(project: Project, start_daemon) -> None:
    # The standby waiting for the next change is given the secrets of the manifest as it
    # is then, never those of the one it was started beside.
    env_tool = NOTES.format(word="plain") + SECRET
    folder = project.plugin("notes", env_tool)
    project.workflow("peek", script=PEEK, tools=["notes.*"])
    daemon = start_daemon(project, reload=True, env={"NOTES_TOKEN": "granted"})
    assert daemon.run("peek").output == ["plain", "none", "absent"]
    (folder / "plugin.py").write_text(textwrap.dedent(env_tool.replace("plain", "edited")))
    assert eventually(lambda: daemon.run("peek").output == ["edited", "none", "absent"])
    assert eventually(lambda: len(_standbys(daemon)) == 1), daemon.log
    [standby] = _standbys(daemon)

    (folder / "plugin.yaml").write_text("name: notes\nsecrets: [NOTES_TOKEN]\n")
    assert eventually(lambda: daemon.run("peek").output == ["edited", "granted", "absent"])
    assert _reloaded_pids(daemon)[-1] == standby
    (folder / "plugin.yaml").write_text("name: notes\n")
    assert eventually(lambda: daemon.run("peek").output == ["edited", "none", "absent"])
