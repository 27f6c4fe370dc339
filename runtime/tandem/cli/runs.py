"""`tandem runs`: list runs (filtered), show one as a timeline, export one as a fixture,
flag one as wrong, exclude one from validation and stats, run one's trigger again, and
prune old ones."""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tandem.escalation import ESCALATED

from .common import EXIT_OK, EXIT_RUN_FAILED, UsageError, control, control_for_run, rpc_error

if TYPE_CHECKING:  # imported when the command runs, not by every command's parser
    from tandem.client import ControlClient
    from tandem.config import ProjectConfig
    from tandem.store import Event

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(commands: Any) -> None:
    runs = commands.add_parser("runs", help="list runs; `runs show|export|flag ID` for one run")
    runs.add_argument("--workflow", default="")
    coordinators = ["", "llm", "script", "mcp", ESCALATED]  # ESCALATED: a script's, handed over
    runs.add_argument("--coordinator", default="", choices=coordinators)
    runs.add_argument(
        "--mode", default="", choices=["", "live", "dry_run", "replay", "shadow", "mcp"]
    )
    runs.add_argument(
        "--all",
        action="store_true",
        help="replays and shadows too (default: live and dry runs, MCP sessions)",
    )
    runs.add_argument("--flagged", action="store_true", help="only runs flagged as wrong")
    runs.add_argument("--since", help="an ISO date or time, or an age like 2h or 7d")
    runs.add_argument("--until", help="an ISO date or time, or an age like 30m")
    runs.add_argument(
        "--status",
        default="",
        choices=[
            "",
            "queued",
            "running",
            "waiting",
            "succeeded",
            "failed",
            "cancelled",
            "timed_out",
            "interrupted",
        ],
    )
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs_commands = runs.add_subparsers(
        dest="runs_command",
        metavar="show|export|flag|cancel|exclude|include|rerun|prune",
    )
    show = runs_commands.add_parser("show", help="one run with its trace")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    export = runs_commands.add_parser("export", help="write a run as a test fixture")
    export.add_argument("run_id")
    export.add_argument("folder", help="where to write <workflow>-<run id>.json")
    flag = runs_commands.add_parser("flag", help="mark a run as wrong, saying why")
    flag.add_argument("run_id")
    flag.add_argument("reason", nargs="?", default="")
    flag.add_argument(
        "--call",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="the wrong call, numbered as `runs show` numbers them; repeatable",
    )
    flag.add_argument("--clear", action="store_true", help="remove the flag")
    cancel = runs_commands.add_parser("cancel", help="cancel a queued or running run")
    cancel.add_argument("run_id")
    exclude = runs_commands.add_parser(
        "exclude", help="take a run out of rewrite validation, shadows' agreement and stats"
    )
    exclude.add_argument("run_id")
    exclude.add_argument("--reason", default="", help="why (an experiment, a typo, ...)")
    include = runs_commands.add_parser("include", help="take an excluded run back in")
    include.add_argument("run_id")
    rerun = runs_commands.add_parser(
        "rerun", help="run a run's trigger again, live, on the workflow's current version"
    )
    rerun.add_argument("run_id")
    rerun.add_argument("--coordinator", choices=["llm", "script"], help="default: the workflow's")
    rerun.add_argument("--follow", action="store_true", help="print the trace as it happens")
    rerun.add_argument("--json", action="store_true", help="print the new run's record as JSON")
    prune = runs_commands.add_parser(
        "prune", help="delete finished runs created before a date, with their traces"
    )
    prune.add_argument(
        "--before", required=True, help="an ISO date or time, or an age like 30d (older runs go)"
    )
    prune.add_argument("--include-flagged", action="store_true", help="flagged runs go too")
    prune.add_argument("--include-exported", action="store_true", help="exported runs go too")


def cmd_runs(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc

    from . import render

    handler = {
        "show": _show,
        "export": _export,
        "flag": _flag,
        "cancel": _cancel,
        "exclude": _exclude,
        "include": _include,
        "rerun": _rerun,
        "prune": _prune,
    }.get(args.runs_command or "")
    # Only the host that runs a run can cancel it: perhaps one embedded in another command.
    cancel = args.runs_command == "cancel"
    with control_for_run(config, args.run_id) if cancel else control(config) as client:
        try:
            if handler is not None:
                return handler(client, args)
            records = client.runs(
                args.workflow,
                args.status,
                args.limit,
                coordinator=args.coordinator,
                mode=args.mode,
                # Replays and shadows are made from recorded runs: listed when asked.
                modes=[] if args.mode or args.all else ["live", "dry_run", "mcp"],
                flagged=args.flagged,
                since=parse_time(args.since, "--since") if args.since else 0.0,
                until=parse_time(args.until, "--until") if args.until else 0.0,
            )
        except grpc.RpcError as error:
            raise rpc_error(error) from None
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
    else:
        for record in records:
            print(render.format_run_row(record))
    return EXIT_OK


def _show(client: ControlClient, args: argparse.Namespace) -> int:
    from . import render

    record = client.run(args.run_id)
    print(
        json.dumps(record.to_json(), indent=2)
        if args.json
        else render.format_run(record, trace=True)
    )
    return EXIT_OK


def _export(client: ControlClient, args: argparse.Namespace) -> int:
    from tandem.replay import write_fixture

    path = write_fixture(client.export(args.run_id), Path(args.folder))
    print(path)
    return EXIT_OK


def _flag(client: ControlClient, args: argparse.Namespace) -> int:
    if args.clear:
        client.flag(args.run_id, "", [])
        print(f"run {args.run_id}: flag cleared")
        return EXIT_OK
    if not args.reason:
        raise UsageError("say why the run is wrong: tandem runs flag RUN_ID REASON")
    if any(n < 1 for n in args.call):
        raise UsageError("--call counts from 1, as `tandem runs show` numbers the calls")
    client.flag(args.run_id, args.reason, [n - 1 for n in args.call])
    calls = f" (calls {', '.join(map(str, args.call))})" if args.call else ""
    print(f"run {args.run_id} flagged{calls}: {args.reason}")
    return EXIT_OK


def _cancel(client: ControlClient, args: argparse.Namespace) -> int:
    if not client.cancel(args.run_id):
        raise UsageError(f"run {args.run_id} is neither queued nor running")
    print(f"run {args.run_id}: cancelled")
    return EXIT_OK


def _exclude(client: ControlClient, args: argparse.Namespace) -> int:
    client.exclude(args.run_id, args.reason)
    why = f": {args.reason}" if args.reason else ""
    print(f"run {args.run_id} excluded from rewrite validation, shadows and stats{why}")
    return EXIT_OK


def _include(client: ControlClient, args: argparse.Namespace) -> int:
    client.exclude(args.run_id, include=True)
    print(f"run {args.run_id}: included again")
    return EXIT_OK


def _rerun(client: ControlClient, args: argparse.Namespace) -> int:
    import sys

    from . import render
    from .follow import follow

    run_id = client.rerun(args.run_id, args.coordinator)
    out = sys.stderr if args.json else sys.stdout
    print(f"run {run_id}: rerun of {args.run_id}", file=out, flush=True)
    renderer = render.TraceRenderer()

    def show(event: Event) -> None:
        if args.follow:
            print(renderer.line(event), file=out, flush=True)

    _, record = follow(client, run_id, show)
    if args.json:
        print(json.dumps(record.to_json(), indent=2))
    else:
        print(render.format_run(record, trace=False))
    return EXIT_OK if record.status == "succeeded" else EXIT_RUN_FAILED


def _prune(client: ControlClient, args: argparse.Namespace) -> int:
    pruned, kept = client.prune(
        parse_time(args.before, "--before"),
        include_flagged=args.include_flagged,
        include_exported=args.include_exported,
    )
    print(f"{pruned} run(s) deleted with their traces")
    if kept:
        print(
            f"{kept} flagged or exported run(s) as old kept"
            " (--include-flagged, --include-exported to delete them)"
        )
    return EXIT_OK


def parse_time(text: str, flag: str) -> float:
    """An ISO date or time (local unless it says), or an age like 30m, 2h, 7d."""
    if match := _RELATIVE.match(text.strip()):
        return time.time() - float(match[1]) * _UNIT_S[match[2]]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(
            f"{flag} {text!r}: expected an ISO date or time, or an age like 2h"
        ) from None
