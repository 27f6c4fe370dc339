"""`make bench` (part): the author's inner loop.

- plugin reload: a plugin file saved -> the first tool call answered by the new code,
  through a daemon with hot reload on (watch, debounce, the new process's start, describe,
  switch). A run polls the tool in a loop (every 2 ms) and returns the moment it sees the
  new answer; that moment (CLOCK_MONOTONIC, shared by every process on the machine) minus
  the moment the file was saved is one sample. The first save of a session starts a new
  process from nothing; later ones find a standby process already started. Reference:
  starting a plugin server's Python with its imports, in the same rounds;
- workflow reload: a script saved -> the daemon's registry holds the new version (polled
  over Control), against the same poll's own round trip;
- `tandem run` without a daemon (a host embedded for the command) against the same run
  through a running daemon (`tandem serve` in another process, `tandem run` its client),
  each on a project of its own so the embedded runs find no daemon.

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

ROUNDS = 9
SETTLE_S = 1.0
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
POLLER = """
import time

def handler(trigger, tools, virtual_files, subagent):
    while tools.notes.word() != trigger["want"]:
        time.sleep(0.002)
    return time.perf_counter()
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
    (root / "workflows" / "poller").mkdir(parents=True)
    (root / "workflows" / "poller" / "script.py").write_text(textwrap.dedent(POLLER))
    (root / "workflows" / "poller" / "workflow.yaml").write_text(
        "coordinator: script\ncoordinator_script: script.py\ntools: [notes.*]\n"
        "limits: {timeout_s: 60, max_tool_calls: 100000}\n"
    )


def reload_once(root: Path, client: ControlClient, n: int) -> float:
    """Seconds from saving new code to the first call the new code answered."""
    run_id = client.trigger("poller", {"want": f"w{n}"}, None)
    events = client.watch(run_id)
    for event in events:
        if event.kind == "tool.result":  # the run is polling the old code
            break
    path = root / "plugins" / "notes" / "plugin.py"
    started = time.perf_counter()
    path.write_text(textwrap.dedent(PLUGIN.format(word=f"w{n}")))
    for _ in events:
        pass
    record = client.run(run_id)
    if record.status != "succeeded":
        said = [e.data for e in record.events if e.kind in ("stderr", "tool.result")][-3:]
        raise RuntimeError(f"the polling run ended {record.status}: {record.error}: {said}")
    return float(record.output) - started


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
        served, alone = Path(tmp) / "served", Path(tmp) / "alone"
        project(served)
        project(alone)  # never has a daemon: its runs embed a host
        log = Path(tmp) / "daemon.log"  # a file, not a pipe nobody drains once it is up
        with log.open("w") as sink:
            daemon = subprocess.Popen(
                [*TANDEM, "--project", str(served), "serve"],
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        try:
            while "control socket" not in log.read_text():
                if daemon.poll() is not None:
                    raise RuntimeError(f"the daemon exited:\n{log.read_text()}")
                time.sleep(0.05)
            client = ControlClient(load_config(served).control_socket)
            reloads, references, workflow_reloads, polls = [], [], [], []
            embedded, through_daemon = [], []
            for n in range(1, ROUNDS + 1):
                reloaded, poll = workflow_reload_once(served, client, n)
                workflow_reloads.append(reloaded)
                polls.append(poll)
                reloads.append(reload_once(served, client, n))
                time.sleep(SETTLE_S)  # the daemon starts the next standby: not in what follows
                references.append(reference())
                embedded.append(cli_run(alone))
                through_daemon.append(cli_run(served))
            client.close()
        finally:
            daemon.terminate()
            daemon.wait(30)
    first, later = reloads[0], reloads[1:]
    reload_m, ref_m = statistics.median(reloads), statistics.median(references)
    embedded_m, daemon_m = statistics.median(embedded), statistics.median(through_daemon)
    workflow_m, poll_m = statistics.median(workflow_reloads), statistics.median(polls)
    rows = [
        ("workflow saved -> registry holds it", workflow_m, ""),
        ("one ListWorkflows poll (the probe)", poll_m, ""),
        ("plugin saved -> first call answered by it", reload_m, "(p50 of every save)"),
        ("  the first save (no standby yet)", first, ""),
        ("  later saves (a standby takes the code)", statistics.median(later), ""),
        ("python + grpc + plugin server imports", ref_m, f"(p50 reload {reload_m / ref_m:.2f}x)"),
        ("tandem run, no daemon (embedded host)", embedded_m, ""),
        ("tandem run through the daemon", daemon_m, f"(embedded {embedded_m / daemon_m:.2f}x)"),
    ]
    print(f"author's inner loop, medians of {ROUNDS} interleaved rounds")
    for label, seconds, ratio in rows:
        print(f"  {label:<44}{seconds * 1000:7.0f} ms   {ratio}")


if __name__ == "__main__":
    main()
