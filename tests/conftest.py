"""Shared fixtures: throwaway projects and real daemons on temporary sockets."""

from __future__ import annotations

import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tandem.cli.main import main
from tandem.config import load_config
from tandem.testing.daemon import TANDEM, ServedDaemon
from tandem.webhooks.verify import sign

REPO = Path(__file__).resolve().parent.parent

# The start of a test plugin's source: the `add` tool, with `tool` imported for the rest.
ADD_PLUGIN = '''
from tandem_sdk import tool

@tool(side_effects=False)
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first.
        b: the second.
    """
    return a + b
'''


class Project:
    """A project folder built by a test: workflows and plugins written from strings."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "workflows").mkdir(parents=True, exist_ok=True)
        (root / "plugins").mkdir(exist_ok=True)

    @property
    def config(self) -> Any:
        return load_config(self.root)

    def workflow(
        self,
        name: str,
        *,
        script: str | None = None,
        prompt: str | None = None,
        files: dict[str, str] | None = None,
        **fields: Any,
    ) -> Path:
        folder = self.root / "workflows" / name
        folder.mkdir(parents=True, exist_ok=True)
        spec: dict[str, Any] = {"name": name, **fields}
        if script is not None:
            (folder / "script.py").write_text(textwrap.dedent(script))
            spec.setdefault("coordinator", "script")
            spec.setdefault("coordinator_script", "script.py")
        if prompt is not None:
            (folder / "prompt.md").write_text(textwrap.dedent(prompt))
            spec.setdefault("coordinator", "llm")
            spec.setdefault("prompt", "prompt.md")
        if files:
            spec["files"] = {}
            for virtual, content in files.items():
                (folder / "files").mkdir(exist_ok=True)
                (folder / "files" / virtual).write_text(content)
                spec["files"][virtual] = f"files/{virtual}"
        (folder / "workflow.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        return folder

    def raw_workflow(self, name: str, yaml_text: str, **extra_files: str) -> Path:
        folder = self.root / "workflows" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "workflow.yaml").write_text(textwrap.dedent(yaml_text))
        for filename, content in extra_files.items():
            (folder / filename).write_text(textwrap.dedent(content))
        return folder

    def plugin(self, name: str, code: str, **manifest: Any) -> Path:
        folder = self.root / "plugins" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plugin.py").write_text(textwrap.dedent(code))
        (folder / "plugin.yaml").write_text(yaml.safe_dump({"name": name, **manifest}))
        return folder


class Daemon(ServedDaemon):
    """`tandem serve` on a test's project, hot reload off unless asked."""

    def __init__(
        self,
        project: Project,
        *args: str,
        env: dict[str, str] | None = None,
        reload: bool = False,
        state_dir: Path | None = None,
    ) -> None:
        self.project = project
        flags = [] if reload else ["--no-reload"]
        super().__init__(project.root, *args, *flags, env=env, state_dir=state_dir)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "project")


@pytest.fixture
def start_daemon() -> Iterator[Any]:
    daemons: list[Daemon] = []

    def start(
        project: Project, *args: str, env: dict[str, str] | None = None, reload: bool = False
    ) -> Daemon:
        daemon = Daemon(project, *args, env=env, reload=reload)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.close()


def tandem(project: Project, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a subprocess."""
    return subprocess.run(
        [*TANDEM, "--project", str(project.root), *args],
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 60),
        **kwargs,
    )


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI's `main()` in this process, answering as `tandem()` does: for tests of many
    commands where the process boundary shows nothing (each start costs a Python start)."""

    def run(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
        argv = ["--project", str(project.root), *args]
        code = main(argv)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    return run


def post_signed(url: str, body: bytes, secret: str, request_id: str) -> int:
    """POST `body` to a webhook as a generic HMAC sender does, with the headers the tests'
    hooks name (`X-Deploy-Signature`, `X-Request-Id`); the HTTP status of the answer."""
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Deploy-Signature": sign(secret, body),
            "X-Request-Id": request_id,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def eventually(condition: Callable[[], bool], within: float = 20.0) -> bool:
    """For what arrives asynchronously (file events, restarts, schedules): check a
    condition until a bound."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """This test process's throwaway PostgreSQL (tandem.testing.postgres), started on first use."""
    from tandem.testing.postgres import PgServer

    server = PgServer()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """The URL of a fresh, empty database on the test PostgreSQL."""
    return str(pg_server.fresh_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A new run store's location on each database: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "runs.sqlite3"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_location: Path | str) -> Iterator[Any]:
    """A run store on each database, closed after the test."""
    from tandem.store import RunStore

    opened = RunStore(store_location)
    yield opened
    opened.close()
