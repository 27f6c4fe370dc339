"""References built from bare gRPC and bare Python, measured beside Tandem in the same run:

- one unary hop over a unix socket (client -> echo server -> back);
- a 2-hop chain, which is the shape of Tandem's path (script -> host -> plugin): a grpc.aio
  server (as the host is) forwarding each request, as bytes, to a threaded echo server (as
  a plugin server is), driven by client processes (as scripts are);
- a naive start of the venv's Python importing what a script's runner needs first.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
from tandem.testing.closing import Closing

PAYLOAD = b'{"value": 1}'
METHOD = "/bench.Echo/Echo"

ECHO_SERVER = """
import sys, grpc
from concurrent import futures
same = lambda b: b
handler = grpc.method_handlers_generic_handler(
    "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r, same, same)})
server = grpc.server(futures.ThreadPoolExecutor(8))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("unix:" + sys.argv[1])
server.start()
print("ready", flush=True)
sys.stdin.read()
"""

FORWARDER = """
import asyncio, sys, grpc

async def main():
    same = lambda b: b
    channel = grpc.aio.insecure_channel("unix:" + sys.argv[2])
    onward = channel.unary_unary("/bench.Echo/Echo")

    async def forward(request, context):
        return await onward(request)

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(forward, same, same)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("unix:" + sys.argv[1])
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""

# Connects and warms up, says ready, waits for "go", makes N calls, prints its start and end.
CLIENT = """
import sys, time, grpc
echo = grpc.insecure_channel("unix:" + sys.argv[1]).unary_unary("/bench.Echo/Echo")
for _ in range(20):
    echo(b'{"value": 1}')
print("ready", flush=True)
sys.stdin.readline()
started = time.time()
for _ in range(int(sys.argv[2])):
    echo(b'{"value": 1}')
print(started, time.time(), flush=True)
"""

# What a script's runner imports before it can call a tool.
NAIVE_START = [sys.executable, "-I", "-B", "-c", "import grpc, tandem_sdk.client"]


class Server(Closing):
    """A Python server script in its own process, serving on a unix socket once ready."""

    def __init__(self, code: str, socket: Path, *args: str) -> None:
        self.socket = socket
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(socket), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.close()
            raise SystemExit(f"reference server on {socket} did not start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


class Chain(Closing):
    """The 2-hop chain: forwarder (grpc.aio) -> echo server (threaded), two processes."""

    def __init__(self, folder: Path) -> None:
        self.end = Server(ECHO_SERVER, folder / "chain-end.sock")
        self.front = Server(FORWARDER, folder / "chain-front.sock", str(self.end.socket))

    def calls_per_second(self, clients: int, calls: int) -> float:
        """`clients` processes make `calls` calls each, released at once: total calls over
        the time from the first one's start to the last one's end."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, str(self.front.socket), str(calls)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(clients)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        spans = [tuple(map(float, proc.communicate()[0].split())) for proc in procs]
        wall = max(end for _, end in spans) - min(start for start, _ in spans)
        return clients * calls / wall

    def close(self) -> None:
        self.front.close()
        self.end.close()


def hop_samples(socket: Path, calls: int) -> list[float]:
    """`calls` unary calls over one channel, each timed."""
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        echo: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        for _ in range(20):
            echo(PAYLOAD)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            echo(PAYLOAD)
            samples.append(time.perf_counter() - started)
    return samples


def naive_start() -> float:
    """Seconds from spawning the venv's Python (importing grpc and the SDK's client) to its
    exit."""
    started = time.perf_counter()
    subprocess.run(NAIVE_START, check=True)
    return time.perf_counter() - started
