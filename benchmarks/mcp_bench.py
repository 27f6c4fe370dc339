"""`make bench` (part): MCP both ways, each against a reference measured in the same run.

- a script's call to an MCP server through Tandem (the minimal echo server of mcp_ref.py,
  configured in `mcp_servers:`), timed in the script, against the same call made directly
  by the official client over stdio (goal: at most 1.3x);
- a call through `tandem mcp serve --workflow loop` (the `bench` plugin's echo), made by
  the official client over stdio and timed in it, against the same tool served by a bare
  `MCPServer` over stdio (goal: at most 1.5x).

Rounds are interleaved as in bench.py; each round gives a p50 and a p99 per path, the
figures are medians over rounds, and each ratio is taken round by round.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml
from daemon import WARM_UP, Daemon, loop_script, make_project
from mcp_ref import MCP_VERSION, SERVER, McpEcho
from measure import interleave, machine, ms, p50, p99, ratio
from tandem.testing.daemon import TANDEM

ROUNDS = 5
CALLS = 300
GOALS = {"through_tandem": 1.3, "mcp_serve": 1.5}


def _add_mcp(root: Path) -> None:
    """The reference's echo server as the project's MCP server `echo`, and `mcploop`."""
    server = {"command": sys.executable, "args": ["-I", "-c", SERVER]}
    (root / "tandem.yaml").write_text(yaml.safe_dump({"mcp_servers": {"echo": server}}))
    folder = root / "workflows" / "mcploop"
    folder.mkdir(parents=True)
    (folder / "script.py").write_text(loop_script("echo.echo"))
    (folder / "workflow.yaml").write_text(
        "coordinator: script\ncoordinator_script: script.py\ntools: [echo.echo]\n"
        "limits: {max_tool_calls: 100000, timeout_s: 600}\n"
    )


def main() -> None:
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        root = make_project(Path(tmp) / "project")
        _add_mcp(root)
        serve = [*TANDEM, "--project", str(root), "mcp", "serve", "--workflow", "loop"]
        with Daemon(root) as daemon, McpEcho() as direct, McpEcho(serve, "bench__echo") as served:
            daemon.run("mcploop", {"calls": WARM_UP})  # the server and the page cache

            rounds = interleave(
                ROUNDS,
                {
                    "through_tandem": lambda: daemon.loop_samples("mcploop", CALLS),
                    "direct": lambda: direct.samples(CALLS),
                    "mcp_serve": lambda: served.samples(CALLS),
                },
            )
    p50s = {name: [p50(r) for r in results] for name, results in rounds.items()}
    p99s = {name: [p99(r) for r in results] for name, results in rounds.items()}
    print(f"MCP both ways: {ROUNDS} interleaved rounds of {CALLS} calls, medians of rounds")
    print(f"  {'':<52}{'p50':>11}{'p99':>12}")

    def line(label: str, name: str, figure: str = "") -> None:
        print(f"  {label:<52}{ms(p50(p50s[name]))} {ms(p50(p99s[name]))}   {figure}".rstrip())

    def figure(name: str, what: str) -> str:
        value = ratio(p50s[name], p50s["direct"])
        verdict = "within" if value <= GOALS[name] else "MISSES"
        return f"{what:<22}{value:5.2f}x  ({verdict} the goal of {GOALS[name]}x)"

    line("script -> Tandem -> MCP server (timed in the script)", "through_tandem")
    line(f"  official client -> bare MCPServer (mcp {MCP_VERSION})", "direct")
    print(f"  {'':<52}{figure('through_tandem', 'mcp/through_tandem')}")
    line("official client -> tandem mcp serve -> plugin", "mcp_serve")
    line("  official client -> bare MCPServer (the same row)", "direct")
    print(f"  {'':<52}{figure('mcp_serve', 'mcp/tandem_mcp_serve')}")


if __name__ == "__main__":
    main()
