"""`make console` (scripts/console_demo.py): the demo's example with the console on, its
sign-in URL, served until SIGINT, and nothing left running after."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import httpx
from conftest import REPO

WAIT_S = 120


def test_the_console_demo_signs_in_and_stops_on_sigint() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "console_demo.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            lines.put(line)
        lines.put(None)  # the script's output ended

    threading.Thread(target=read, daemon=True).start()
    url, daemon_pid, seen = "", 0, []
    try:
        while not daemon_pid:
            line = lines.get(timeout=WAIT_S)
            assert line is not None, "the script ended before serving:\n" + "\n".join(seen)
            line = line.strip()
            seen.append(line)
            if "/?token=" in line:
                url = line
            elif line.startswith("daemon pid "):
                daemon_pid = int(line.split()[2].rstrip(";"))
        assert url.startswith("http://127.0.0.1:"), seen
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            runs = browser.get(url)
            assert runs.status_code == 200 and "pr_merged" in runs.text
            ledger = browser.get(url.split("/?")[0] + "/ledger").text
            assert (
                'data-series="pr_merged · llm"' in ledger
                and 'data-series="pr_merged · script"' in ledger
            )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    try:
        os.kill(daemon_pid, 0)
        raise AssertionError(f"the daemon {daemon_pid} still runs")
    except ProcessLookupError:
        pass
    address = urlsplit(url)
    with socket.socket() as probe:
        assert probe.connect_ex((address.hostname or "", address.port or 0)) != 0
