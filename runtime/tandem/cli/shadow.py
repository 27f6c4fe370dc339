"""`tandem shadow WORKFLOW`: how often the shadow coordinator agreed with the real one on
the last triggers, and each difference. A shadow is a dry run of the other coordinator
on the same trigger, its reads answered from the real run's recording."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, control, rpc_error

if TYPE_CHECKING:  # imported when `tandem shadow` runs, not by every command's parser
    from tandem.config import ProjectConfig
    from tandem.store import RunRecord


def add_parser(commands: Any) -> None:
    shadow = commands.add_parser(
        "shadow", help="shadow runs of a workflow: agreement with the real runs, differences"
    )
    shadow.add_argument("workflow")
    shadow.add_argument("--last", type=int, default=20, metavar="N", help="the last N triggers")
    shadow.add_argument("--json", action="store_true")


def cmd_shadow(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc
    from tandem_sdk.plan import PlanDiff

    with control(config) as client:
        try:
            # Excluded runs, and shadows of them, are left out of the agreement.
            shadows = client.runs(
                args.workflow, "", args.last, mode="shadow", without_excluded=True
            )
        except grpc.RpcError as error:
            raise rpc_error(error) from None
    rows = [_row(s) for s in shadows]
    counts = {
        "agreed": sum(1 for r in rows if r["verdict"] == "agreed"),
        "differed": sum(1 for r in rows if r["verdict"] == "differed"),
        "shadow_failed": sum(1 for r in rows if r["verdict"] == "shadow failed"),
        "pending": sum(1 for r in rows if r["verdict"] == "pending"),
        "skipped": sum(1 for r in rows if r["verdict"] == "skipped"),
    }
    if args.json:
        print(json.dumps({"workflow": args.workflow, **counts, "shadows": rows}, indent=2))
        return EXIT_OK
    if not rows:
        print(
            f"no shadow runs of {args.workflow}: set `shadow: script` (or llm) in its workflow.yaml"
        )
        return EXIT_OK
    coordinators = sorted({r["coordinator"] for r in rows})
    print(
        f"{args.workflow}: shadow ({', '.join(coordinators)}) over the last {len(rows)} "
        f"trigger(s): agreed {counts['agreed']}, differed {counts['differed']}, "
        f"shadow failed {counts['shadow_failed']}"
        + (f", skipped {counts['skipped']}" if counts["skipped"] else "")
        + (f", still running {counts['pending']}" if counts["pending"] else "")
    )
    for row in rows:
        if row["verdict"] in ("agreed", "pending"):
            continue
        print(f"\n{row['verdict'].upper()}: run {row['primary']}, shadow {row['shadow']}")
        if row["verdict"] == "skipped":
            print(f"  {row['error']}")  # "skipped: why"
        elif row["error"]:
            print(f"  shadow error: {row['error']}")
        diff = PlanDiff.from_json(row["diff"])
        for line in diff.lines():
            print("  " + line.replace("\n", "\n  "))
        if diff.entries:
            print(f"  {diff.summary()}")
    return EXIT_OK


def _row(shadow: RunRecord) -> dict[str, Any]:
    diff = shadow.plan_diff or {}
    if not diff:
        verdict = "pending"
    elif "skipped" in diff:  # it never ran: the host had no model for it
        verdict = "skipped"
    elif shadow.status != "succeeded":
        verdict = "shadow failed"
    else:
        verdict = "agreed" if diff.get("agree") else "differed"
    return {
        "shadow": shadow.id,
        "primary": shadow.source_run,
        "coordinator": shadow.coordinator,
        "verdict": verdict,
        "status": shadow.status,
        "error": shadow.error,
        "summary": diff.get("summary", ""),
        "diff": diff.get("entries", []),
        "tokens": shadow.usage,
    }
