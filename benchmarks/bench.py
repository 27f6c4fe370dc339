"""`make bench` (part): a tool call's round trip, against two references in the same run.

- Tandem: script -> ToolHost -> plugin process -> back, timed inside the script, through a
  real `tandem serve` (the default `namespace` tier);
- MCP: an echo tool on a minimal `mcp` server, called over stdio by the official client;
- raw gRPC: one unary hop over a unix socket, the floor.

Rounds are interleaved (one Tandem run of CALLS calls, then CALLS MCP calls, then CALLS raw
hops; the other way round every other round); each round gives a p50 and a p99 per path,
and the figures are medians over rounds, with Tandem's p50 / the reference's p50 taken
round by round.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from daemon import WARM_UP, Daemon, make_project
from grpc_refs import ECHO_SERVER, Server, hop_samples
from mcp_ref import MCP_VERSION, McpEcho
from measure import interleave, machine, ms, p50, p99, ratio

ROUNDS = 5
CALLS = 400


def main() -> None:
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        root = make_project(Path(tmp) / "project")
        with (
            Daemon(root) as daemon,
            Server(ECHO_SERVER, Path(tmp) / "raw.sock") as raw,
            McpEcho() as mcp,
        ):
            daemon.run("loop", {"calls": WARM_UP})  # the plugin and the page cache

            rounds = interleave(
                ROUNDS,
                {
                    "tandem": lambda: daemon.loop_samples("loop", CALLS),
                    "mcp": lambda: mcp.samples(CALLS),
                    "raw": lambda: hop_samples(raw.socket, CALLS),
                },
            )
    p50s = {name: [p50(r) for r in results] for name, results in rounds.items()}
    p99s = {name: [p99(r) for r in results] for name, results in rounds.items()}
    print(f"tool call round trip: {ROUNDS} interleaved rounds of {CALLS} calls, medians of rounds")
    print(f"  {'':<47}{'p50':>11}{'p99':>12}")
    rows = [
        ("tandem tool call (script->host->plugin->back)", "tandem", ""),
        (f"MCP stdio call_tool (mcp {MCP_VERSION})", "mcp", "tool_call/mcp"),
        ("raw gRPC unary hop, unix socket", "raw", "tool_call/raw_hop"),
    ]
    for label, name, what in rows:
        figure = f"{what:<18}{ratio(p50s['tandem'], p50s[name]):5.2f}x" if what else ""
        line = f"  {label:<47}{ms(p50(p50s[name]))} {ms(p50(p99s[name]))}   {figure}"
        print(line.rstrip())


if __name__ == "__main__":
    main()
