"""`tandem replay`: run recorded runs again through the current workflow, answered from
their recordings, and print the tool-plan diff. Exit 0 when every plan agrees, 1 when one
does not, so a replay is a check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, EXIT_RUN_FAILED, UsageError, control, rpc_error

if TYPE_CHECKING:  # imported when the command runs, not by every command's parser
    from tandem_sdk.plan import PlanDiff

    from tandem.config import ProjectConfig
    from tandem.store import RunRecord

    from .control_client import ControlClient

FINISHED = ("succeeded", "failed", "timed_out")


def add_parser(commands: Any) -> None:
    replay = commands.add_parser(
        "replay", help="replay recorded runs through the current workflow; diff the tool plans"
    )
    replay.add_argument("run_id", nargs="?", default="", metavar="RUN_ID")
    replay.add_argument("--coordinator", choices=["llm", "script"], help="replay with this one")
    replay.add_argument(
        "--workflow",
        metavar="NAME|PATH",
        help="with --last: whose runs; a folder: replay against it",
    )
    replay.add_argument("--last", type=int, default=0, metavar="N", help="the last N runs")
    replay.add_argument(
        "--live-reads", action="store_true", help="run unrecorded read-only calls for real"
    )
    replay.add_argument(
        "--strict-order", action="store_true", help="calls made in another order disagree"
    )
    replay.add_argument("--json", action="store_true")


def cmd_replay(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc

    workflow_name, workflow_path = _workflow_arg(args.workflow)
    if args.run_id and args.last:
        raise UsageError("give a RUN_ID or --last N, not both")
    if not args.run_id and not (args.last and workflow_name):
        raise UsageError("give a RUN_ID, or --workflow NAME --last N")
    with control(config) as client:
        try:
            if args.run_id:
                result = _replay_one(client, args.run_id, args, workflow_path)
                _print_one(result, args)
                return EXIT_OK if result["agree"] else EXIT_RUN_FAILED
            recorded = [
                r
                for r in client.runs(workflow_name, "", args.last * 4, mode="live")
                if r.status in FINISHED
            ][: args.last]
            results = [_replay_one(client, r.id, args, workflow_path) for r in recorded]
        except grpc.RpcError as error:
            raise rpc_error(error) from None
    _print_many(results, args)
    return EXIT_OK if results and all(r["agree"] for r in results) else EXIT_RUN_FAILED


def _workflow_arg(value: str | None) -> tuple[str, str | None]:
    """--workflow is a name, or a folder (a path that exists, or holds a slash)."""
    if not value:
        return "", None
    folder = Path(value)
    if "/" in value or folder.is_dir():
        if not (folder / "workflow.yaml").is_file():
            raise UsageError(f"--workflow {value}: no workflow.yaml in that folder")
        return folder.resolve().name, str(folder.resolve())
    return value, None


def _replay_one(
    client: ControlClient, run_id: str, args: argparse.Namespace, workflow_path: str | None
) -> dict[str, Any]:
    from tandem_sdk.plan import diff_plans

    from tandem.replay import Recording, attempted_plan

    replay_id = client.replay(run_id, args.coordinator, workflow_path, args.live_reads)
    for _ in client.watch(replay_id):
        pass
    recorded, replayed = client.run(run_id), client.run(replay_id)
    diff = diff_plans(Recording.from_run(recorded).plan, attempted_plan(replayed))
    return {
        "run": run_id,
        "replay": replay_id,
        "recorded_coordinator": recorded.coordinator,
        "replayed_coordinator": replayed.coordinator,
        "agree": diff.agrees(strict_order=args.strict_order),
        "summary": diff.summary(),
        "diff": diff,
        "recorded": _outcome(recorded),
        "replayed": _outcome(replayed),
    }


def _outcome(run: RunRecord) -> dict[str, Any]:
    return {"status": run.status, "output": run.output, "error": run.error}


def _print_one(result: dict[str, Any], args: argparse.Namespace) -> None:
    diff: PlanDiff = result["diff"]
    if args.json:
        print(json.dumps({**result, "diff": diff.to_json()}, indent=2))
        return
    verdict = "plans agree" if result["agree"] else "plans differ"
    print(
        f"replay {result['replay']} of {result['run']} "
        f"({result['recorded_coordinator']} -> {result['replayed_coordinator']}): {verdict}"
        f" ({result['summary'] or 'no calls'})"
    )
    for line in diff.lines():
        print("  " + line.replace("\n", "\n  "))
    width = 38
    recorded, replayed = result["recorded"], result["replayed"]
    print(f"\n  {'recorded':<{width}} replayed")
    print(f"  {recorded['status']:<{width}} {replayed['status']}")
    left = _lines(recorded["output"] if recorded["error"] is None else recorded["error"])
    right = _lines(replayed["output"] if replayed["error"] is None else replayed["error"])
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        mark = " " if a == b else "|"
        print(f"  {a[:width]:<{width}}{mark}{b}")


def _lines(value: Any) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
    return text.splitlines() or [""]


def _print_many(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    agreed = sum(1 for r in results if r["agree"])
    if args.json:
        rows = [{**r, "diff": r["diff"].to_json()} for r in results]
        print(json.dumps({"agreed": agreed, "replayed": len(results), "runs": rows}, indent=2))
        return
    for r in results:
        mark = "agree " if r["agree"] else "DIFFER"
        print(
            f"{mark} {r['run']} ({r['recorded_coordinator']}) -> {r['replay']}: "
            f"{r['summary'] or 'no calls'}; {r['replayed']['status']}"
        )
    print(f"agreed {agreed} of {len(results)}")
