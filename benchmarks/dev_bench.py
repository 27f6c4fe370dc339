"""`make bench` (part): the author's inner loop, each figure against a reference measured
in the same rounds (interleaved; medians of rounds, ratios taken round by round).

- workflow reload: a script saved -> the daemon's registry holds the new version (polled
  over Control); reference: a bare watchfiles watcher with the daemon's settings (50 ms
  debounce, 10 ms step) seeing a save in a folder of its own;
- plugin reload: a plugin file saved -> the first tool call answered by the new code
  (watch, debounce, the new process's start, describe, switch). A run polls the tool every
  2 ms and returns the moment it sees the new answer (perf_counter is CLOCK_MONOTONIC,
  shared by every process on the machine). The first save starts a new process from
  nothing; later ones find a standby process already started. Reference: starting the
  plugin server's Python with its imports;
- `tandem run` without a daemon (a host embedded for the command, on a copy of the
  project) against the same run through a running daemon.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import watchfiles
from daemon import Daemon
from measure import interleave, ms, p50, ratio
from tandem.client import ControlClient
from tandem.testing.closing import Closing
from tandem.testing.daemon import TANDEM
from tandem_sdk._pb import control_pb2

ROUNDS = 5
RELOAD_DEADLINE_S = 30
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


def project(root: Path) -> Path:
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
        f"limits: {{timeout_s: {RELOAD_DEADLINE_S}, max_tool_calls: 100000}}\n"
    )
    return root


class BareWatcher(Closing):
    """watchfiles on a folder of its own, in a thread, with the daemon's settings."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "caller" / "script.py"
        self.file.parent.mkdir(parents=True)
        self.file.write_text(SCRIPT)
        self.seen_at = 0.0
        self._seen = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(folder,), daemon=True)
        self._thread.start()
        while not self._seen.is_set():  # until the watcher is up and sees saves
            self.file.write_text(SCRIPT)
            self._seen.wait(0.2)

    def _watch(self, folder: Path) -> None:
        for _ in watchfiles.watch(folder, debounce=50, step=10, stop_event=self._stop):
            self.seen_at = time.perf_counter()
            self._seen.set()

    def save_seen(self, n: int) -> float:
        """Seconds from saving the file to the watcher yielding the change."""
        time.sleep(0.1)  # let the last change settle
        self._seen.clear()
        started = time.perf_counter()
        self.file.write_text(textwrap.dedent(SCRIPT) + f"# edit {n}\n")
        if not self._seen.wait(10):
            raise SystemExit("watchfiles saw no save within 10 s")
        return self.seen_at - started

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def version(client: ControlClient) -> str:
    reply = client.stub.ListWorkflows(control_pb2.ListWorkflowsRequest())
    return next(w.version for w in reply.workflows if w.name == "caller")


def workflow_reload(root: Path, client: ControlClient, n: int, polls: list[float]) -> float:
    """Seconds from saving a script to the registry holding it; one poll's own time goes
    to `polls`."""
    before = version(client)
    started = time.perf_counter()
    (root / "workflows" / "caller" / "script.py").write_text(textwrap.dedent(SCRIPT) + f"# {n}\n")
    while version(client) == before:
        pass
    reloaded = time.perf_counter() - started
    started = time.perf_counter()
    version(client)
    polls.append(time.perf_counter() - started)
    return reloaded


def plugin_reload(root: Path, client: ControlClient, n: int) -> float:
    """Seconds from saving new code to the first call the new code answered."""
    run_id = client.trigger("poller", {"want": f"w{n}"}, None)
    events = client.watch(run_id)
    for event in events:
        if event.kind == "tool.result":  # the run is polling the old code
            break
    started = time.perf_counter()
    (root / "plugins" / "notes" / "plugin.py").write_text(
        textwrap.dedent(PLUGIN.format(word=f"w{n}"))
    )
    for _ in events:
        pass
    record = client.run(run_id)
    if record.status != "succeeded":
        raise SystemExit(
            f"plugin reload: the new code did not answer within {RELOAD_DEADLINE_S} s of the "
            f"save ({record.status}: {record.error})"
        )
    return float(record.output) - started


def plugin_imports() -> float:
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
        root = project(Path(tmp) / "project")
        alone = Path(tmp) / "alone"  # a copy no daemon serves: `tandem run` embeds a host
        shutil.copytree(root, alone)
        counter = iter(range(1, 1000))
        polls: list[float] = []
        with Daemon(root) as daemon, BareWatcher(Path(tmp) / "watched") as watcher:
            rounds = interleave(
                ROUNDS,
                {
                    "workflow": lambda: workflow_reload(root, daemon.client, next(counter), polls),
                    "watcher": lambda: watcher.save_seen(next(counter)),
                    "embedded": lambda: cli_run(alone),
                    "plugin": lambda: plugin_reload(root, daemon.client, next(counter)),
                    "imports": plugin_imports,
                    "daemon": lambda: cli_run(root),
                },
            )
    rows = [
        ("workflow saved -> registry holds it", rounds["workflow"], rounds["watcher"]),
        ("  bare watchfiles: saved -> seen", rounds["watcher"], None),
        ("  one ListWorkflows poll (the probe)", polls, None),
        ("plugin saved -> first call the new code answers", rounds["plugin"], rounds["imports"]),
        ("  python + grpc + plugin server imports", rounds["imports"], None),
        ("tandem run, no daemon (embedded host)", rounds["embedded"], rounds["daemon"]),
        ("  tandem run through the daemon", rounds["daemon"], None),
    ]
    print(f"author's inner loop: {ROUNDS} interleaved rounds, medians of rounds")
    for label, seconds, reference in rows:
        against = f"{ratio(seconds, reference):6.2f}x the next line" if reference else ""
        print(f"  {label:<50}{ms(p50(seconds))}   {against}".rstrip())


if __name__ == "__main__":
    main()
