"""Tandem: serve the daemon, trigger runs, and look at workflows, tools and runs.

Every command but `serve` talks to the project's daemon over its Control socket when one
is running, and otherwise to a host embedded in this process for the one command.
Exit codes: 0 success, 1 a run that did not succeed (or `check` found errors), 2 usage or
configuration errors.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import (
    approve,
    console,
    mcp,
    new,
    overview,
    replay,
    rewrite,
    run,
    runs,
    shadow,
    stats,
    store_admin,
)
from .common import EXIT_OK, UsageError, fail

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


def build_parser() -> argparse.ArgumentParser:
    from tandem import __version__

    parser = argparse.ArgumentParser(prog="tandem", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"tandem {__version__}")
    parser.add_argument("--project", type=Path, default=None, help="project folder (default: .)")
    parser.add_argument(
        "--workflows", type=Path, help="workflows folder (default: PROJECT/workflows)"
    )
    parser.add_argument(
        "--plugins",
        type=Path,
        action="append",
        help="plugin folder; repeat for more (default: PROJECT/plugins)",
    )
    parser.add_argument("--state", type=Path, help="state folder (default: PROJECT/.tandem)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the host daemon")
    serve.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds runs in flight get on SIGTERM before they are cancelled",
    )
    serve.add_argument(
        "--no-reload", action="store_true", help="do not watch workflows for changes"
    )
    serve.add_argument(
        "--isolation",
        choices=["process", "namespace"],
        help="isolation tier for script runs (default: namespace, or tandem.yaml's)",
    )
    serve.add_argument(
        "--isolation-fallback",
        action="store_true",
        default=None,
        help="start with the process tier when the namespace tier is unavailable",
    )
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve webhook triggers over HTTP here (PORT alone binds to loopback)",
    )
    serve.add_argument(
        "--console",
        metavar="[HOST:]PORT",
        help="serve the console (a browser's view of runs and approvals) here; a bare PORT"
        " binds to loopback, any other address needs TANDEM_CONSOLE_TOKEN",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    # Each command's module adds its own parser and imports what it needs only when it runs.
    for module in (
        run,
        replay,
        shadow,
        rewrite,
        approve,
        stats,
        new,
        runs,
        overview,
        mcp,
        console,
        store_admin,
    ):
        module.add_parser(commands)
    return parser


def entry() -> NoReturn:
    """The `tandem` command. What the command made is frozen before the interpreter exits,
    so its last garbage collection does not sweep every object gRPC, protobuf and pydantic
    made (tens of milliseconds on every command); the rest of the exit is as usual."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
        if args.command == "serve":
            from .serve import serve

            return serve(config, args)
        if args.command == "mcp":  # stdout carries MCP frames only, never wrapped
            return mcp.cmd_mcp(config, args)
        # What runs, tools and plugins wrote is printed here and there: no control
        # character of theirs reaches the terminal raw.
        with _printed_visibly():
            # A host embedded for one command reports what its command asks about (`check`,
            # `workflows`); its log is for errors only, not every other workflow's errors.
            logging.basicConfig(level=logging.ERROR, format="tandem: %(message)s")
            return _handler(args.command)(config, args)
    except UsageError as error:
        return fail(args, str(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`tandem ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        import grpc
        from tandem_sdk.errors import TandemError

        if isinstance(error, TandemError):
            return fail(args, str(error))
        if isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAVAILABLE:
            return fail(args, f"lost the tandem daemon ({error.details()})")
        raise


# The handler of each command, in the command's own module.
_COMMANDS = {
    "run": (run, "cmd_run"),
    "workflows": (overview, "cmd_workflows"),
    "tools": (overview, "cmd_tools"),
    "status": (overview, "cmd_status"),
    "check": (overview, "cmd_check"),
    "replay": (replay, "cmd_replay"),
    "shadow": (shadow, "cmd_shadow"),
    "rewrite": (rewrite, "cmd_rewrite"),
    "approve": (approve, "cmd_decide"),
    "deny": (approve, "cmd_decide"),
    "stats": (stats, "cmd_stats"),
    "new": (new, "cmd_new"),
    "runs": (runs, "cmd_runs"),
    "console": (console, "cmd_console"),
    "store": (store_admin, "cmd_store"),
}


@contextlib.contextmanager
def _printed_visibly() -> Iterator[None]:
    from .render import VisibleOutput

    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = VisibleOutput(sys.stdout), VisibleOutput(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _handler(command: str) -> Callable[[ProjectConfig, argparse.Namespace], int]:
    module, name = _COMMANDS[command]
    handler: Callable[[ProjectConfig, argparse.Namespace], int] = getattr(module, name)
    return handler


def _config(args: argparse.Namespace) -> ProjectConfig:
    from tandem.config import load_config

    return load_config(
        args.project,
        workflows_dir=args.workflows,
        plugins_dirs=args.plugins,
        state_dir=args.state,
        isolation=getattr(args, "isolation", None),
        isolation_fallback=getattr(args, "isolation_fallback", None),
        http_listen=getattr(args, "http", None),
        console_listen=getattr(args, "console", None),
    )
