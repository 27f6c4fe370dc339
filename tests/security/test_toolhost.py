# ruff: noqa: F811 - pytest passes the imported `lab` fixture by name
"""Scripts attacking the one way out, ToolHost: tools out of scope, stolen and forged
tokens, another run's socket and files, oversized messages, floods of calls, and
virtual-file paths that try to leave the workflow's folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from lab import CANARY, Lab, lab  # noqa: F401 - the fixture
from tandem.isolation.rundir import sandbox_base
from tandem.server.run_gate import MAX_CONCURRENT_CALLS, MAX_REQUEST_BYTES

CALLS = """
import json, os
from tandem_sdk import ToolHostClient, errors

def outcome(call):
    try:
        return {"ok": call()}
    except errors.TandemError as error:
        return {"error": type(error).__name__, "message": str(error)[:300]}
    except OSError as error:
        return {"error": type(error).__name__, "message": str(error)[:300]}
"""
WORKFLOWS = {
    "holder": (
        """
import json, os
def handler(trigger, tools, virtual_files, subagent):
    token = open(os.environ["TANDEM_TOKEN_FILE"]).read()
    socket = os.environ["TANDEM_TOOLHOST"]
    print("HOLDER " + json.dumps({"token": token, "socket": socket}), flush=True)
    return tools.gate.wait_for(fifo=trigger["fifo"])
""",
        {"tools": ["gate.*"], "limits": {"timeout_s": 30}},
    ),
    "intruder": (
        CALLS
        + """
def handler(trigger, tools, virtual_files, subagent):
    mine = os.environ["TANDEM_TOOLHOST"]
    my_token = open(os.environ["TANDEM_TOKEN_FILE"]).read()
    other = trigger["token"]
    def with_token(target, token):
        return lambda: ToolHostClient(target, token).list_tools() and "listed"
    return {
        "other_token_here": outcome(with_token(mine, other)),
        "other_socket": outcome(with_token(trigger["socket"], other)),
        "forged_secret": outcome(with_token(mine, my_token.split(".")[0] + ".forged")),
        "forged_run": outcome(with_token(mine, "20200101-000000-abcdef.x")),
        "no_token": outcome(with_token(mine, "")),
        "other_files": outcome(lambda: os.listdir(trigger["folder"])),
        "other_token_file": outcome(lambda: open(trigger["folder"] + "/token").read()),
        "own_still_works": outcome(lambda: tools.util.echo(text="mine")),
    }
""",
        {"tools": ["util.*"]},
    ),
    "overreach": (
        CALLS
        + """
def handler(trigger, tools, virtual_files, subagent):
    return {
        "out_of_scope": outcome(lambda: tools.vault.launch()),
        "unknown": outcome(lambda: tools.vault.nope()),
        "huge": outcome(lambda: tools.util.echo(text="x" * trigger["size"])),
        "after": outcome(lambda: tools.util.echo(text="fine")),
    }
""",
        {"tools": ["util.*"]},
    ),
    "flood": (
        CALLS
        + """
import threading
def handler(trigger, tools, virtual_files, subagent):
    count = trigger["count"]
    barrier = threading.Barrier(count)
    results = []
    def call():
        barrier.wait(timeout=20)
        results.append(outcome(lambda: tools.gate.hold(seconds=trigger["hold"])))
    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kinds = {}
    for result in results:
        key = "ok" if "ok" in result else result["error"]
        kinds[key] = kinds.get(key, 0) + 1
    return {"kinds": kinds, "after": outcome(lambda: tools.util.echo(text="calm"))}
""",
        {"tools": ["util.*", "gate.*"], "limits": {"max_tool_calls": 200, "timeout_s": 60}},
    ),
    "traverse": (
        CALLS
        + """
def handler(trigger, tools, virtual_files, subagent):
    out = {}
    for path in trigger["paths"]:
        out[path] = outcome(lambda: virtual_files[path])
    out["files.read"] = outcome(lambda: tools.files.read(path="../workflow.yaml"))
    return out
""",
        {"files": {"team.md": "alice\n"}},
    ),
}
PLUGINS = {
    "gate": '''
import os, threading
from tandem_sdk import tool

@tool(side_effects=False)
def wait_for(fifo: str) -> str:
    """Block until a byte arrives on `fifo`.

    Args:
        fifo: path of a named pipe the test holds open.
    """
    with open(fifo, "rb") as pipe:
        return pipe.read(1).decode()

@tool(side_effects=False)
def hold(seconds: float) -> str:
    """Stay in flight for a while.

    Args:
        seconds: how long.
    """
    threading.Event().wait(seconds)
    return "held"
''',
    "vault": '''
from tandem_sdk import tool

@tool
def launch() -> str:
    """Something no workflow here may call."""
    return "launched"
''',
}


def prepare(project: object) -> None:
    """A workflow whose virtual file is a symlink to a secret outside its folder."""
    root = project.root  # type: ignore[attr-defined]
    secret = root / "outside-secret.txt"
    secret.write_text(CANARY)
    folder = root / "workflows" / "symlinked"
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "leak.md").symlink_to(secret)
    (folder / "script.py").write_text(
        "def handler(trigger, tools, virtual_files, subagent):\n"
        "    return virtual_files['leak.md']\n"
    )
    (folder / "workflow.yaml").write_text(
        "name: symlinked\ncoordinator: script\ncoordinator_script: script.py\n"
        "files:\n  leak.md: files/leak.md\n"
    )


def test_tokens_and_sockets_of_other_runs_are_useless(lab: Lab) -> None:
    # The gate plugin runs as a uid of its own: the fifo goes where that uid may reach
    # (pytest's tmp_path is root's alone, hidden from a confined plugin).
    shared = Path(tempfile.mkdtemp(prefix="tandem-gate-"))
    shared.chmod(0o755)
    fifo = shared / "release"
    os.mkfifo(fifo, 0o666)
    keep_open = os.open(fifo, os.O_RDWR)  # so the holder's open() never blocks
    try:
        holder = lab.daemon.client.trigger("holder", {"fifo": str(fifo)}, None)
        info = None
        for event in lab.daemon.client.watch(holder):
            if event.kind == "stdout" and "HOLDER " in event.data["text"]:
                info = json.loads(event.data["text"].split("HOLDER ", 1)[1].splitlines()[0])
                break
        assert info is not None, "the holder run never printed its token"
        folder = sandbox_base(lab.project.config.state_dir / "runs") / holder
        assert folder.is_dir()  # alive, and this is where its token and socket are
        socket = f"unix:{folder / 'toolhost.sock'}"
        record = lab.run("intruder", {**info, "socket": socket, "folder": str(folder)})
        os.write(keep_open, b"!")
    finally:
        os.close(keep_open)
        shutil.rmtree(shared)
    assert record.status == "succeeded", record.error
    out = record.output
    for attack in ("other_token_here", "forged_secret", "forged_run", "no_token"):
        assert out[attack].get("error") == "Unauthenticated", (attack, out[attack])
    assert "ok" not in out["other_socket"]  # not even reachable
    assert out["other_files"]["error"] in ("PermissionError", "FileNotFoundError")
    assert out["other_token_file"]["error"] in ("PermissionError", "FileNotFoundError")
    assert out["own_still_works"] == {"ok": "mine"}
    held = lab.daemon.client.run(holder)
    for _ in lab.daemon.client.watch(holder):
        pass
    held = lab.daemon.client.run(holder)
    assert held.status == "succeeded" and held.output == "!", held.error
    # Its token died with it: the ended run's token opens nothing, not even its own door.
    ended = lab.run("intruder", {**info, "socket": socket, "folder": str(folder)})
    assert ended.output["other_token_here"]["error"] == "Unauthenticated"
    lab.assert_contained()


def test_out_of_scope_and_oversized_calls_are_refused(lab: Lab) -> None:
    record = lab.run("overreach", {"size": 2 * 1024 * 1024})
    assert record.status == "succeeded", record.error
    out = record.output
    assert out["out_of_scope"]["error"] == "ToolNotInScope"
    assert out["unknown"]["error"] in ("NotFound", "ToolNotInScope")
    assert out["huge"]["error"] == "LimitExceeded", out["huge"]
    assert str(MAX_REQUEST_BYTES) in out["huge"]["message"]
    assert out["after"] == {"ok": "fine"}
    lab.assert_contained()


def test_a_flood_of_concurrent_calls_is_capped(lab: Lab) -> None:
    count = 2 * MAX_CONCURRENT_CALLS  # threads count against the run's process limit
    record = lab.run("flood", {"count": count, "hold": 2})
    assert record.status == "succeeded", record.error
    kinds = record.output["kinds"]
    assert sum(kinds.values()) == count
    # The calls held in flight fill the cap; every call beyond it is refused at once.
    assert kinds.get("ok", 0) <= MAX_CONCURRENT_CALLS
    assert kinds.get("LimitExceeded", 0) >= count - MAX_CONCURRENT_CALLS
    assert record.output["after"] == {"ok": "calm"}
    lab.assert_contained()


def test_virtual_file_paths_cannot_leave_the_workflow(lab: Lab) -> None:
    paths = ["../workflow.yaml", "/etc/passwd", "team.md/../../script.py", "..", ""]
    record = lab.run("traverse", {"paths": paths})
    assert record.status == "succeeded", record.error
    for path in [*paths, "files.read"]:
        assert record.output[path].get("error") in ("InvalidArguments", "NotFound"), (
            path,
            record.output[path],
        )
    # A symlink pointing outside the folder is refused when the workflow loads.
    with pytest.raises(Exception, match="outside the workflow folder"):
        lab.daemon.client.trigger("symlinked", None, None)
    lab.assert_contained()
