"""Plugins under a root daemon: each runs as a uid of its own, so neither the daemon's
secrets (its /proc/PID/environ), another plugin's (its environ and memory) nor the state
folder are within its reach; loopback network and its own data folder are."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from conftest import Project, tandem
from lab import CANARY, SECRET_ENV
from tandem.isolation.identity import UID_BASE, UID_COUNT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plugin uids need a root daemon")

PROBER = '''
import errno, os, socket
from tandem_sdk import tool

def _attempt(read):
    try:
        return {"ok": read()}
    except OSError as error:
        return {"errno": errno.errorcode.get(error.errno, str(error.errno))}

def _read(path):
    with open(path, "rb") as file:
        return file.read(4096).decode("latin-1")

@tool(side_effects=False)
def probe(paths: list[str], port: int) -> dict:
    """Read each path; reach a loopback port; write to the plugin's data folder.

    Args:
        paths: files to read.
        port: a loopback port to connect to.
    """
    def connect():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"from the plugin")
        return "sent"

    def write():
        path = os.path.join(os.environ["TANDEM_PLUGIN_DATA"], "mine.txt")
        with open(path, "w") as file:
            file.write("kept")
        return "written"

    return {
        "uid": os.getuid(),
        "reads": {path: _attempt(lambda p=path: _read(p)) for path in paths},
        "loopback": _attempt(connect),
        "data": _attempt(write),
    }
'''

OTHER = '''
import os
from tandem_sdk import tool

@tool(side_effects=False)
def whoami() -> dict:
    """This process's pid and uid."""
    return {"pid": os.getpid(), "uid": os.getuid()}
'''


def test_a_plugin_reaches_neither_the_daemon_nor_another_plugin_nor_the_state(
    project: Project, start_daemon
) -> None:
    project.plugin("prober", PROBER)
    project.plugin("other", OTHER, secrets=["VAULT_TOKEN"])
    project.workflow(
        "whoami",
        tools=["other.whoami"],
        script="def handler(trigger, tools, virtual_files, subagent):\n"
        "    return tools.other.whoami()\n",
    )
    project.workflow(
        "probe",
        tools=["prober.probe"],
        script="def handler(trigger, tools, virtual_files, subagent):\n"
        "    return tools.prober.probe(paths=trigger['paths'], port=trigger['port'])\n",
    )
    daemon = start_daemon(project, env=SECRET_ENV)
    other = daemon.run("whoami").output
    state = project.config.state_dir
    paths = {
        "daemon environ": f"/proc/{daemon.pid}/environ",
        "other environ": f"/proc/{other['pid']}/environ",
        "other memory": f"/proc/{other['pid']}/mem",
        "run store": str(state / "runs.sqlite3"),
    }
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        port = server.getsockname()[1]
        record = daemon.run("probe", {"paths": list(paths.values()), "port": port})
        assert record.status == "succeeded", record.error
        connection, _ = server.accept()
        with connection:
            assert connection.recv(100) == b"from the plugin"
    result = record.output
    assert CANARY not in json.dumps(result)  # neither the model's key nor VAULT_TOKEN
    for what, path in paths.items():
        assert "ok" not in result["reads"][path], (what, result["reads"][path])
    assert result["reads"][paths["daemon environ"]] == {"errno": "EACCES"}
    assert result["reads"][paths["other environ"]] == {"errno": "EACCES"}
    assert result["loopback"] == {"ok": "sent"}
    assert result["data"] == {"ok": "written"}
    assert (state / "plugins" / "prober" / "mine.txt").read_text() == "kept"

    status = json.loads(tandem(project, "status", "--json").stdout)
    assert status["plugin_isolation"] == "uid"
    uids = {p["name"]: p["uid"] for p in status["plugins"]}
    assert uids["prober"] == result["uid"] and uids["other"] == other["uid"]
    assert uids["prober"] != uids["other"]
    assert all(UID_BASE <= uid < UID_BASE + UID_COUNT for uid in uids.values())
    assert Path(state / "plugins" / "prober").stat().st_uid == result["uid"]
    text = tandem(project, "status").stdout
    assert "plugins: each runs as a uid of its own" in text
    assert f"uid {uids['prober']}" in text
