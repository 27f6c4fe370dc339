"""`make bench`: latency of the core paths, with p50/p99.

- tool call round trip: script -> ToolHost -> plugin process -> back, timed in the script;
- raw gRPC unary hop over a unix socket, same machine, same run: the floor to compare with;
- script cold start: trigger -> first tool call arriving at the host (from the trace).

Each figure runs through the real host (embedded, as `tandem run` does without a daemon).
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import grpc
from tandem.cli.control_client import ControlClient
from tandem.config import load_config
from tandem.embedded import EmbeddedHost

CALLS = 2000
COLD_STARTS = 20
RAW_CALLS = 5000

PLUGIN = '''
from tandem_sdk import tool

@tool(side_effects=False)
def echo(value: int) -> int:
    """Return the value.

    Args:
        value: any integer.
    """
    return value
'''

ROUND_TRIP_SCRIPT = f"""
import time

def handler(trigger, tools, virtual_files, subagent):
    samples = []
    for i in range({CALLS}):
        started = time.perf_counter()
        tools.bench.echo(value=i)
        samples.append(time.perf_counter() - started)
    return samples
"""

COLD_SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return tools.bench.echo(value=1)
"""

RAW_SERVER = """
import sys, grpc
from concurrent import futures
identity = lambda b: b
handler = grpc.method_handlers_generic_handler(
    "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r, identity, identity)})
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("unix:" + sys.argv[1])
server.start()
print("ready", flush=True)
sys.stdin.read()
"""


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1e3:8.3f} ms   p99 {p99 * 1e3:8.3f} ms   (n={len(ordered)})"


def make_project(root: Path) -> None:
    plugin = root / "plugins" / "bench"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text("name: bench\n")
    (plugin / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    for name, script in (("round_trip", ROUND_TRIP_SCRIPT), ("cold", COLD_SCRIPT)):
        folder = root / "workflows" / name
        folder.mkdir(parents=True)
        (folder / "script.py").write_text(script)
        (folder / "workflow.yaml").write_text(
            "coordinator: script\ncoordinator_script: script.py\ntools: [bench.echo]\n"
            f"limits: {{max_tool_calls: {CALLS + 10}, timeout_s: 600}}\n"
        )


def run(client: ControlClient, workflow: str):  # type: ignore[no-untyped-def]
    run_id = client.trigger(workflow, None, None)
    for _ in client.watch(run_id):
        pass
    record = client.run(run_id)
    if record.status != "succeeded":
        raise SystemExit(f"{workflow} {record.status}: {record.error}")
    return record


def raw_grpc_hop(folder: Path) -> list[float]:
    socket = folder / "raw.sock"
    server = subprocess.Popen(
        [sys.executable, "-c", RAW_SERVER, str(socket)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        with grpc.insecure_channel(f"unix:{socket}") as channel:
            echo = channel.unary_unary("/bench.Echo/Echo")
            payload = b'{"value": 1}'
            for _ in range(200):
                echo(payload)
            samples = []
            for _ in range(RAW_CALLS):
                started = time.perf_counter()
                echo(payload)
                samples.append(time.perf_counter() - started)
        return samples
    finally:
        server.kill()
        server.wait()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        root = Path(tmp)
        make_project(root)
        config = load_config(root)
        print(f"tandem bench: {CALLS} tool calls, {COLD_STARTS} cold starts, {RAW_CALLS} raw hops")
        with EmbeddedHost(config) as host, ControlClient(host.control_socket) as client:
            print(f"isolation tier: {host.host.isolation.name}")
            run(client, "cold")  # warm the page cache and the plugin
            round_trip = run(client, "round_trip").output[200:]  # drop the warm-up calls
            cold = []
            for _ in range(COLD_STARTS):
                events = run(client, "cold").events
                started = next(e.ts for e in events if e.kind == "run.started")
                first_call = next(e.ts for e in events if e.kind == "tool.call")
                cold.append(first_call - started)
        raw = raw_grpc_hop(root)
    print(f"tool call round trip (script->host->plugin->back)  {percentiles(round_trip)}")
    print(f"raw gRPC unary hop over a unix socket              {percentiles(raw)}")
    print(f"script cold start (trigger -> first tool call)     {percentiles(cold)}")
    sandbox = Path(__file__).with_name("sandbox_bench.py")
    if sandbox.is_file():
        spec = importlib.util.spec_from_file_location("sandbox_bench", sandbox)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main()


if __name__ == "__main__":
    main()
