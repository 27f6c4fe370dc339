"""`make bench` (part): the author's inner loop.

- plugin reload: a plugin file saved -> the next call served by the new code, through a
  daemon with hot reload on (watch, debounce, new process start, describe, switch);
  reference: starting the plugin server's Python with its imports, measured in the
  same rounds;
- workflow reload: a script saved -> the daemon's registry holds the new version (polled
  over Control), against the same poll's own round trip;
- `tandem run` without a daemon (a host embedded for the command) against the same run
  through a running daemon.

Rounds are interleaved; medians are reported.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from tandem.cli.control_client import ControlClient
from tandem.config import load_config

ROUNDS = 7
PLUGIN = '''
from tandem_sdk import tool

@tool(read_only=True)
def word() -> str:
    """A word."""
    return "{word}"
'''
SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return tools.notes.word()
"""
TANDEM = [sys.executable, "-m", "tandem.cli"]


def project(root: Path) -> None:
    (root / "plugins" / "notes").mkdir(parents=True)
    (root / "plugins" / "notes" / "plugin.yaml").write_text("name: notes\n")
    (root / "plugins" / "notes" / "plugin.py").write_text(textwrap.dedent(PLUGIN.format(word="w0")))
    (root / "workflows" / "caller").mkdir(parents=True)
    (root / "workflows" / "caller" / "script.py").write_text(textwrap.dedent(SCRIPT))
    (root / "workflows" / "caller" / "workflow.yaml").write_text(
        "coordinator: script\ncoordinator_script: script.py\ntools: [notes.*]\n"
    )


def call(client: ControlClient) -> object:
    run_id = client.trigger("caller", None, None)
    for _ in client.watch(run_id):
        pass
    return client.run(run_id).output


def reload_once(root: Path, client: ControlClient, n: int) -> float:
    """Seconds from saving new code to a run whose call the new code answered."""
    path = root / "plugins" / "notes" / "plugin.py"
    started = time.perf_counter()
    path.write_text(textwrap.dedent(PLUGIN.format(word=f"w{n}")))
    while call(client) != f"w{n}":
        pass
    return time.perf_counter() - started


def version(client: ControlClient) -> str:
    from tandem_sdk._pb import control_pb2

    reply = client.stub.ListWorkflows(control_pb2.ListWorkflowsRequest())
    return next(w.version for w in reply.workflows if w.name == "caller")


def workflow_reload_once(root: Path, client: ControlClient, n: int) -> tuple[float, float]:
    """Seconds from saving a script to the registry holding it; and one poll's own time."""
    before = version(client)
    path = root / "workflows" / "caller" / "script.py"
    started = time.perf_counter()
    path.write_text(textwrap.dedent(SCRIPT) + f"# edit {n}\n")
    while version(client) == before:
        pass
    reloaded = time.perf_counter() - started
    started = time.perf_counter()
    version(client)
    return reloaded, time.perf_counter() - started


def reference() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-I", "-c", "import grpc, tandem_sdk.plugin_server"], check=True
    )
    return time.perf_counter() - started


def cli_run(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [*TANDEM, "--project", str(root), "run", "caller"], check=True, capture_output=True
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tandem-dev-bench-") as tmp:
        root = Path(tmp) / "project"
        project(root)
        embedded = [cli_run(root) for _ in range(ROUNDS)]  # no daemon yet
        daemon = subprocess.Popen(
            [*TANDEM, "--project", str(root), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert daemon.stderr is not None
            for line in daemon.stderr:
                if "control socket" in line:
                    break
            client = ControlClient(load_config(root).control_socket)
            reloads, references, through_daemon, workflow_reloads, polls = [], [], [], [], []
            for n in range(1, ROUNDS + 1):
                reloaded, poll = workflow_reload_once(root, client, n)
                workflow_reloads.append(reloaded)
                polls.append(poll)
                reloads.append(reload_once(root, client, n))
                references.append(reference())
                through_daemon.append(cli_run(root))
            client.close()
        finally:
            daemon.terminate()
            daemon.wait(30)
    reload_m, ref_m = statistics.median(reloads), statistics.median(references)
    embedded_m, daemon_m = statistics.median(embedded), statistics.median(through_daemon)
    workflow_m, poll_m = statistics.median(workflow_reloads), statistics.median(polls)
    rows = [
        ("workflow saved -> registry holds it", workflow_m, ""),
        ("one ListWorkflows poll (the probe)", poll_m, ""),
        ("plugin saved -> next call served by it", reload_m, ""),
        ("python + grpc + plugin server imports", ref_m, f"({reload_m / ref_m:.2f}x)"),
        ("tandem run, no daemon (embedded host)", embedded_m, ""),
        ("tandem run through the daemon", daemon_m, f"({embedded_m / daemon_m:.2f}x)"),
    ]
    print(f"author's inner loop, medians of {ROUNDS} rounds")
    for label, seconds, ratio in rows:
        print(f"  {label:<42}{seconds * 1000:7.0f} ms   {ratio}")


if __name__ == "__main__":
    main()
