"""`make bench` (part): the webhook listener under IDLE connections that never finish their
request head (a slow-loris client), against the same daemon with none, in the same run.

Each round measures, on a real `tandem serve --http`, the p50 of CALLS Control `Health`
calls and of CALLS signed GitHub deliveries (each a new pull request, so each starts a
run; the round waits for its runs to end before the next round). In the `idle` rounds a
thread keeps IDLE connections open, each having sent part of a request head, opening a
new one whenever the daemon closes one (at its header deadline, or at once past its
connection cap), as an attacker would; in the `none` rounds nothing else connects.
"""

from __future__ import annotations

import multiprocessing
import re
import socket
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from daemon import Daemon
from measure import interleave, ms, p50, ratio
from tandem.testing.github_webhook import deliver
from tandem_sdk._pb import control_pb2

ROUNDS = 5
CALLS = 40
IDLE = 1000
SECRET = "listener-bench"
WORKFLOW = """
coordinator: script
coordinator_script: script.py
triggers:
  - webhook: {path: /hooks/github, secret_env: GITHUB_WEBHOOK_SECRET}
"""
SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return trigger["payload"]["number"]
"""


class IdleConnections:
    """IDLE connections held open by a process of their own (not a thread: the attacker's
    work must not take the measuring client's interpreter lock), each mid-head, reopened
    when the daemon closes it."""

    def __init__(self, address: tuple[str, int]) -> None:
        self._stop = multiprocessing.Event()
        self._opened = multiprocessing.Value("i", 0)
        self._process = multiprocessing.Process(
            target=_hold, args=(address, self._stop, self._opened), daemon=True
        )

    def __enter__(self) -> IdleConnections:
        self._process.start()
        deadline = time.monotonic() + 30
        while self._opened.value < IDLE and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._process.join()


def _open(address: tuple[str, int]) -> socket.socket | None:
    try:
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
    except OSError:
        return None
    sock.setblocking(False)
    return sock


def _hold(address: tuple[str, int], stop: Any, opened: Any) -> None:
    held: list[socket.socket] = []
    while True:
        alive = []
        for sock in held:
            try:
                closed = sock.recv(1) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                sock.close()
            else:
                alive.append(sock)
        fresh = [s for s in (_open(address) for _ in range(IDLE - len(alive))) if s]
        opened.value += len(fresh)
        held = alive + fresh
        if stop.wait(0.05):
            break
    for sock in held:
        sock.close()


def make_project(root: Path) -> Path:
    folder = root / "workflows" / "on_pr"
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text(textwrap.dedent(WORKFLOW))
    (folder / "script.py").write_text(textwrap.dedent(SCRIPT))
    return root


def main() -> None:
    numbers = iter(range(1, 1_000_000))
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        root = make_project(Path(tmp) / "project")
        with Daemon(root, "--http", "127.0.0.1:0", env={"GITHUB_WEBHOOK_SECRET": SECRET}) as d:
            url = next(
                m.group(1) for line in d.log if (m := re.search(r"listener (http://\S+)", line))
            )
            host, _, port = url.removeprefix("http://").rpartition(":")
            address = (host, int(port))

            def health() -> float:
                started = time.perf_counter()
                d.client.stub.Health(control_pb2.HealthRequest(), timeout=30)
                return time.perf_counter() - started

            def delivery() -> float:
                number = next(numbers)
                payload = {"action": "closed", "number": number, "pull_request": {"number": number}}
                started = time.perf_counter()
                answer = deliver(url + "/hooks/github", "pull_request", payload, secret=SECRET)
                elapsed = time.perf_counter() - started
                if answer.status != 202:
                    raise SystemExit(f"delivery answered {answer.status}: {answer.body}")
                return elapsed

            def measure() -> tuple[float, float]:
                figures = (
                    p50([health() for _ in range(CALLS)]),
                    p50([delivery() for _ in range(CALLS)]),
                )
                while d.client.stub.Health(control_pb2.HealthRequest()).active_runs:
                    time.sleep(0.05)  # the round's runs end before the next round
                return figures

            def under_idle() -> tuple[float, float]:
                with IdleConnections(address):
                    return measure()

            measure()  # warm up: the plugins, the first runs
            rounds = interleave(ROUNDS, {"idle": under_idle, "none": measure})
    idle, none = rounds["idle"], rounds["none"]
    print(
        f"webhook listener under {IDLE} idle connections (mid-head, reopened when closed):"
        f" {ROUNDS} interleaved rounds of {CALLS} calls, medians of rounds"
    )
    for index, label in ((0, "Control Health"), (1, "signed delivery -> 202")):
        a, b = [r[index] for r in idle], [r[index] for r in none]
        print(
            f"  {label:<24} idle {ms(p50(a))}   none {ms(p50(b))}   idle/none {ratio(a, b):5.2f}x"
        )


if __name__ == "__main__":
    main()
