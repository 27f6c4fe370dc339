"""Starting a plugin process: the readiness handshake on an inherited pipe, and standby
processes (started ahead, with no secret) taking a plugin's code and secrets, or being
passed over when they cannot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import eventually
from tandem.plugins.launch import launch
from tandem.plugins.link import PluginLink
from tandem.plugins.manifest import PluginManifest, read_manifest
from tandem.plugins.standby import Standby
from tandem_sdk._pb import plugin_pb2
from tandem_sdk.errors import DefinitionError

NOTES = '''
import os
from tandem_sdk import tool

@tool(read_only=True)
def word() -> str:
    """A word."""
    return "{word}"

@tool(read_only=True)
def secret() -> str:
    """The token this process sees."""
    return os.environ.get("NOTES_TOKEN", "none")
'''


def _plugin(root: Path, code: str, manifest: str = "name: notes\n") -> PluginManifest:
    folder = root / "plugins" / "notes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.py").write_text(code)
    (folder / "plugin.yaml").write_text(manifest)
    return read_manifest(folder)


def _server(module: Path, socket: Path, ready_fd: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-m",
            "tandem_sdk.plugin_server",
            "--name",
            "notes",
            "--module",
            str(module),
            "--socket",
            str(socket),
            "--ready-fd",
            str(ready_fd),
        ],
        pass_fds=(ready_fd,),
        stderr=subprocess.PIPE,
    )


def test_the_server_says_ready_once_it_serves(tmp_path: Path) -> None:
    manifest = _plugin(tmp_path, NOTES.format(word="hi"))
    socket = tmp_path / "notes.sock"
    read, write = os.pipe()
    server = _server(manifest.module_path, socket, write)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as ready:
            assert ready.readline() == b"ready\n"
            assert ready.read() == b"", "the server closes the pipe after saying so"
        # Ready means serving: the very first attempt connects, with no wait for readiness.
        reply = asyncio.run(_first_attempt(socket, plugin_pb2.DescribeRequest()))
        assert [t.name for t in reply.describe.tools] == ["word", "secret"]
    finally:
        server.terminate()
        server.wait(10)


def test_a_server_that_cannot_load_closes_the_pipe_unready(tmp_path: Path) -> None:
    manifest = _plugin(tmp_path, "raise RuntimeError('half-saved file')\n")
    read, write = os.pipe()
    server = _server(manifest.module_path, tmp_path / "notes.sock", write)
    os.close(write)
    with os.fdopen(read, "rb") as ready:
        assert ready.read() == b""
    assert server.wait(10) == 3
    assert server.stderr is not None
    assert b"half-saved file" in server.stderr.read()


async def _first_attempt(
    socket: Path, request: plugin_pb2.DescribeRequest
) -> plugin_pb2.PluginReply:
    """One call over the plugin link, without the link's wait for a socket to appear."""
    link = PluginLink(socket)
    try:
        return await link.call(plugin_pb2.PluginRequest(describe=request), 5)
    finally:
        link.close()


async def _call(socket: Path, tool: str) -> str:
    link = PluginLink(socket)
    try:
        reply = await link.invoke(plugin_pb2.InvokeRequest(tool=tool, arguments_json="{}"), 5)
    finally:
        link.close()
    return str(reply.result_json)


def _environ(pid: int) -> dict[str, str]:
    """The environment a process was started with. A child's exec has closed the pipe its
    parent waits on (so the start has returned) before the kernel lays out the new
    program's environment, which reads empty until then: wait for it."""
    environ = Path(f"/proc/{pid}/environ")
    assert eventually(lambda: environ.read_bytes() != b""), "the process never exec'd"
    items = environ.read_text().split("\0")
    return dict(item.split("=", 1) for item in items if item)


def test_a_standby_takes_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTES_TOKEN", "granted")
    manifest = _plugin(tmp_path, NOTES.format(word="two"), "name: notes\nsecrets: [NOTES_TOKEN]\n")

    async def scenario() -> None:
        standby = await Standby.start("notes", tmp_path / "data")
        assert standby.process.pid is not None
        started_with = _environ(standby.process.pid)
        assert "NOTES_TOKEN" not in started_with, "a standby starts with no secret"
        assert started_with["TANDEM_PLUGIN_DATA"] == str(tmp_path / "data")
        generation = await launch(manifest, tmp_path / "a.sock", tmp_path / "data", standby)
        try:
            assert generation.process is standby.process
            cwd = Path(os.readlink(f"/proc/{standby.process.pid}/cwd"))
            assert cwd == (tmp_path / "data").resolve(), "it works in the plugin's data folder"
            assert [t.name for t in generation.tools] == ["notes.word", "notes.secret"]
            assert await _call(generation.socket, "word") == '"two"'
            assert await _call(generation.socket, "secret") == '"granted"'
        finally:
            await generation.close()

    asyncio.run(scenario())


def test_a_standby_that_died_is_passed_over(tmp_path: Path) -> None:
    manifest = _plugin(tmp_path, NOTES.format(word="two"))

    async def scenario() -> None:
        standby = await Standby.start("notes", tmp_path / "data")
        standby.process.kill_group()
        await standby.process.wait()
        generation = await launch(manifest, tmp_path / "a.sock", tmp_path / "data", standby)
        try:
            assert generation.process is not standby.process
            assert await _call(generation.socket, "word") == '"two"'
        finally:
            await generation.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("other", ["plugin", "variable read at start"])
def test_a_standby_that_does_not_fit_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    # A standby of another plugin; or a plugin whose secret acts as a process starts (the
    # dynamic loader's, the interpreter's, gRPC's), which a standby received too late.
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path / "no-libraries"))
    secrets = "[LD_LIBRARY_PATH]" if other != "plugin" else "[]"
    manifest = _plugin(tmp_path, NOTES.format(word="two"), f"name: notes\nsecrets: {secrets}\n")
    name = "other" if other == "plugin" else "notes"

    async def scenario() -> None:
        standby = await Standby.start(name, tmp_path / "data")
        generation = await launch(manifest, tmp_path / "a.sock", tmp_path / "data", standby)
        try:
            assert generation.process is not standby.process
            assert standby.process.returncode is not None, "the unfit standby is stopped"
            assert await _call(generation.socket, "word") == '"two"'
            assert generation.process.pid is not None
            started_with = _environ(generation.process.pid)
            assert ("LD_LIBRARY_PATH" in started_with) == (other != "plugin")
        finally:
            await generation.close()

    asyncio.run(scenario())


def test_code_that_fails_in_a_standby_is_a_load_error(tmp_path: Path) -> None:
    manifest = _plugin(tmp_path, "raise RuntimeError('half-saved file')\n")

    async def scenario() -> None:
        standby = await Standby.start("notes", tmp_path / "data")
        with pytest.raises(DefinitionError, match="half-saved file"):
            await launch(manifest, tmp_path / "a.sock", tmp_path / "data", standby)
        assert standby.process.returncode == 3
        assert not (tmp_path / "a.sock").exists()

    asyncio.run(scenario())


HELPED = '''
from tandem_sdk import tool
from words import WORD

@tool(read_only=True)
def word() -> str:
    """A word."""
    return WORD
'''


def test_a_same_sized_save_within_the_second_is_served(tmp_path: Path) -> None:
    # Python's bytecode cache judges a source by its size and its modification time in
    # whole seconds: a quick save of the same size must still be served, module and helper.
    manifest = _plugin(tmp_path, NOTES.format(word="one"))
    helper = manifest.folder / "words.py"
    helper.write_text('WORD = "one"\n')

    async def served(socket: str) -> str:
        generation = await launch(manifest, tmp_path / socket, tmp_path / "data")
        try:
            return await _call(generation.socket, "word")
        finally:
            await generation.close()

    def save(path: Path, text: str) -> None:
        before = path.stat()
        assert len(text.encode()) == before.st_size
        path.write_text(text)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert asyncio.run(served("a.sock")) == '"one"'
    save(manifest.module_path, NOTES.format(word="two"))
    assert asyncio.run(served("b.sock")) == '"two"'
    save(manifest.module_path, HELPED + " " * (len(NOTES.format(word="two")) - len(HELPED)))
    assert asyncio.run(served("c.sock")) == '"one"'
    save(helper, 'WORD = "two"\n')
    assert asyncio.run(served("d.sock")) == '"two"'
