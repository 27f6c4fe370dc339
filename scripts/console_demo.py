"""`make console`: the demo's example (scripts/demo.py) with the daemon's console on, then
the console's sign-in URL, served until Ctrl-C (or SIGTERM). The daemon and the stand-ins
are stopped before it exits.

The console listens on 127.0.0.1:PORT (8377 unless --port says otherwise); when that port
is taken, on a free one instead, and the URL printed says which.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from demo import Daemon, bold, copy_workflow, dim, introduce, run_example, stand_ins, tandem_command

DEFAULT_PORT = 8377


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop serving."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now (0: any free port can)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sign_in_url(state: Path) -> str:
    command = [*tandem_command(state), "console"]
    shown = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return shown.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the console's port")
    port = parser.parse_args().port
    if not free(port):
        print(dim(f"   port {port} is taken: the console takes a free one"))
        port = 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    settings = introduce()
    try:
        with (
            stand_ins(settings) as (slack, env, _),
            tempfile.TemporaryDirectory(prefix="tandem-console-") as state,
        ):
            copy_workflow(Path(state))
            daemon = Daemon(Path(state), env, "--console", f"127.0.0.1:{port}")
            try:
                run_example(daemon, slack)
                print(f"\n{bold('The console')} (the runs above, their timelines and the ledger):")
                print(f"   {sign_in_url(Path(state))}", flush=True)
                print(dim(f"   daemon pid {daemon.process.pid}; Ctrl-C stops it all"), flush=True)
                while True:
                    signal.pause()
            finally:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C does not cut it short
                daemon.stop()
    except Stop:
        pass
    print(dim("\nStopped the daemon and the stand-ins."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
