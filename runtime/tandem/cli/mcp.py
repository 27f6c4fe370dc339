"""`tandem mcp serve`: Tandem as an MCP server over stdio, for the running daemon."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = commands.add_parser("mcp", help="Tandem as an MCP server (`tandem mcp serve`)")
    actions = mcp.add_subparsers(dest="mcp_command", required=True, metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="speak MCP on stdin/stdout: a workflow's tools as one run, or the workflows",
    )
    serve.add_argument(
        "--workflow",
        help="serve this workflow's tools, every call recorded in one run of mode mcp"
        " (default: one tool per workflow, run_<workflow>)",
    )


def cmd_mcp(config: ProjectConfig, args: argparse.Namespace) -> int:
    """Reach the daemon first: without one, say so on stderr (stdout is for MCP frames)."""
    import anyio

    from tandem.client import ControlClient

    from .common import EXIT_USAGE

    client = ControlClient.connect(config.control_socket)
    if client is None:
        print(
            f"tandem: no tandem daemon answers on {config.control_socket}:"
            " start one with `tandem serve` in the project",
            file=sys.stderr,
        )
        return EXIT_USAGE
    with client:
        if args.workflow:
            found = [w for w in client.workflows() if w.name == args.workflow]
            if not found or not found[0].loaded:
                why = f" does not load: {found[0].error}" if found else " is not in the project"
                print(f"tandem: workflow {args.workflow!r}{why}", file=sys.stderr)
                return EXIT_USAGE
        from tandem.mcp.server.stdio import serve_stdio

        anyio.run(serve_stdio, client, config.workflows_dir, config.state_dir, args.workflow)
    return 0
