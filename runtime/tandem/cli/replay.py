"""`tandem replay`: run recorded runs again through the current workflow, answered from
their recordings, and print the tool-plan diff (`tandem_sdk.plan.diff_plans`, the one rule
of agreement). Exit 0 when every plan agrees, 1 when a replay that ran disagrees, 2 when a
replay could not run (the host refused it, or it failed before its coordinator's first
step, e.g. no API key) and none disagreed: a replay is a check, and one that could not
run checked nothing.

`--model-replies FILE|run:RUN_ID` answers an llm replay's model with scripted turns, as
`tandem run --model-replies` does, on a host embedded in this process."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, UsageError, model_control, rpc_error

if TYPE_CHECKING:  # imported when the command runs, not by every command's parser
    from tandem_sdk.plan import PlanDiff

    from tandem.client import ControlClient
    from tandem.config import ProjectConfig
    from tandem.store import RunRecord

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
    replay.add_argument(
        "--model-replies",
        metavar="FILE|run:RUN_ID",
        help="answer an llm replay's model with scripted turns (as `tandem run`); runs on a"
        " host in this process, not the daemon",
    )
    replay.add_argument("--json", action="store_true")


def cmd_replay(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc

    workflow_name, workflow_path = _workflow_arg(args.workflow)
    if args.run_id and args.last:
        raise UsageError("give a RUN_ID or --last N, not both")
    if not args.run_id and not (args.last and workflow_name):
        raise UsageError("give a RUN_ID, or --workflow NAME --last N")
    with model_control(config, args.model_replies, quiet=args.json) as (client, scripted):
        try:
            if args.run_id:
                results = [_replay_one(client, args.run_id, args, workflow_path, single=True)]
            else:
                recorded = [
                    r
                    for r in client.runs(
                        workflow_name, "", args.last * 4, mode="live", without_excluded=True
                    )
                    if r.status in FINISHED
                ][: args.last]
                results = [_replay_one(client, r.id, args, workflow_path) for r in recorded]
        except grpc.RpcError as error:
            raise rpc_error(error) from None
        if args.run_id:
            _print_one(results[0], args)
        else:
            _print_many(results, args)
        if scripted is not None:
            for warning in scripted.warnings():
                print(f"tandem: warning: model replies: {warning}", file=sys.stderr)
    return exit_code(results)


def exit_code(results: list[dict[str, Any]]) -> int:
    """1 when a replay that ran disagrees; else 2 when one could not run; else 0."""
    if any(r["agree"] is False for r in results) or not results:
        return EXIT_RUN_FAILED
    return EXIT_USAGE if any(r["agree"] is None for r in results) else EXIT_OK


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
    client: ControlClient,
    run_id: str,
    args: argparse.Namespace,
    workflow_path: str | None,
    *,
    single: bool = False,
) -> dict[str, Any]:
    """One replay and its verdict: `agree` True or False, or None with `could_not_run`
    saying why when the replay never ran."""
    import grpc

    from tandem.replay import Recording, took_a_step
    from tandem.watching import watch_run

    recorded = client.run(run_id)
    try:
        replay_id = client.replay(run_id, args.coordinator, workflow_path, args.live_reads)
    except grpc.RpcError as error:
        if single:
            raise
        why = str(rpc_error(error))
        return _not_run(recorded, None, args.coordinator or recorded.coordinator, why)
    watch_run(client, replay_id)
    replayed = client.run(replay_id)
    if replayed.status != "succeeded" and not took_a_step(replayed):
        why = replayed.error or f"it ended {replayed.status}"
        return _not_run(recorded, replayed, replayed.coordinator, why)
    diff = Recording.from_run(recorded).diff(replayed)
    return {
        "run": run_id,
        "replay": replay_id,
        "recorded_coordinator": recorded.coordinator,
        "replayed_coordinator": replayed.coordinator,
        "agree": diff.agrees(strict_order=args.strict_order),
        "could_not_run": None,
        "summary": diff.summary(),
        "diff": diff,
        "recorded": _outcome(recorded),
        "replayed": _outcome(replayed),
    }


def _not_run(
    recorded: RunRecord, replayed: RunRecord | None, coordinator: str, why: str
) -> dict[str, Any]:
    from tandem_sdk.plan import PlanDiff

    return {
        "run": recorded.id,
        "replay": replayed.id if replayed else None,
        "recorded_coordinator": recorded.coordinator,
        "replayed_coordinator": coordinator,
        "agree": None,
        "could_not_run": why,
        "summary": "",
        "diff": PlanDiff([]),
        "recorded": _outcome(recorded),
        "replayed": _outcome(replayed) if replayed else None,
    }


def _outcome(run: RunRecord) -> dict[str, Any]:
    return {"status": run.status, "output": run.output, "error": run.error}


def _print_one(result: dict[str, Any], args: argparse.Namespace) -> None:
    diff: PlanDiff = result["diff"]
    if args.json:
        print(json.dumps({**result, "diff": diff.to_json()}, indent=2))
        return
    if result["could_not_run"] is not None:
        what = f"replay {result['replay']} of" if result["replay"] else "replay of"
        print(
            f"{what} {result['run']} ({result['recorded_coordinator']} ->"
            f" {result['replayed_coordinator']}): could not run: {result['could_not_run']}"
        )
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
    not_run = sum(1 for r in results if r["agree"] is None)
    if args.json:
        rows = [{**r, "diff": r["diff"].to_json()} for r in results]
        report = {"agreed": agreed, "could_not_run": not_run, "replayed": len(results)}
        print(json.dumps({**report, "runs": rows}, indent=2))
        return
    for r in results:
        if r["agree"] is None:
            print(f"NO RUN {r['run']} ({r['recorded_coordinator']}): {r['could_not_run']}")
            continue
        mark = "agree " if r["agree"] else "DIFFER"
        ended = r["replayed"]["status"]
        if r["replayed"]["error"]:
            ended += f": {_lines(r['replayed']['error'])[-1]}"
        print(
            f"{mark} {r['run']} ({r['recorded_coordinator']}) -> {r['replay']}: "
            f"{r['summary'] or 'no calls'}; {ended}"
        )
    print(f"agreed {agreed} of {len(results)}" + (f", {not_run} could not run" if not_run else ""))
