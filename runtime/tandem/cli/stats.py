"""`tandem stats [WORKFLOW]`: the ledger. Per workflow, coordinator and version: runs,
failures, flags, latency, tool and model calls, tokens, cost, distinct tool sequences per
trigger shape and shadow agreement; then each migration's figures before and after; then
the escalations (runs a script handed to the model) per workflow and reason.

The daemon computes it (Control `GetLedger`, one call, from its run store; an embedded host
when no daemon runs); this module only prints it. Only live runs and MCP sessions count
(dry runs, replays and shadows are not production traffic); shadows give only their
agreement. The
definitions are in `tandem.ledger.figures`; COLUMNS says them short.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, UsageError, control, rpc_error

if TYPE_CHECKING:  # imported when `tandem stats` runs, not by every command's parser
    from tandem.config import ProjectConfig

NOTE = (
    "only live runs and MCP sessions (coordinator mcp) count: dry runs, replays and shadows"
    " are not production traffic"
    " (shadows give only SHADOW, their agreement with the live run)"
)
# Each column of the table: what it counts. Per-run columns are means over the row's runs.
COLUMNS = (
    ("RUNS", "live runs and MCP sessions created in the range"),
    ("OK / FAIL / FLAG", "succeeded; failed, timed out or interrupted; flagged as wrong"),
    ("P50 / P95", "run duration (start to finish), nearest-rank percentiles"),
    ("TOOLS/RUN", "tool calls per run, reads of the workflow's files (files.*) left out"),
    ("MODEL/RUN", "model calls per run (0 for a script that asks no subagent)"),
    ("IN/RUN", "input tokens per run: uncached + cache read + cache write"),
    ("OUT/RUN", "output tokens per run"),
    ("COST/RUN, COST", "USD per run and in all, at the price table's list prices"),
    ("PLANS/SHAPES", "distinct tool sequences (tools in order, arguments aside) / trigger shapes"),
    ("SHADOW", "shadows that succeeded and agreed / shadows with a verdict"),
)
EPILOG = (
    "columns (a row is a workflow, coordinator and version; COORD marked * ran with a"
    " coordinator its version does not configure, a one-off --coordinator run):\n"
    + "\n".join(f"  {name:<17}{meaning}" for name, meaning in COLUMNS)
    + "\n\na migration is a change of the workflow's configured coordinator between two"
    " versions, in time order; one-off --coordinator runs, shadows, replays and runs that"
    " failed before their first step are not one.\n\nan escalated run (its script raised"
    " Escalate and the model took over; coordinator script+llm in `tandem runs`) counts in"
    " its script's row, the model's tokens and cost with it; the escalations below the"
    " table count them per reason."
)


def add_parser(commands: Any) -> None:
    import argparse as _argparse

    stats = commands.add_parser(
        "stats",
        help="the ledger: runs, failures, latency, tokens, cost and tool plans per workflow,"
        " coordinator and version, and each migration before and after",
        description="The ledger of live runs and MCP sessions, computed by the daemon.",
        epilog=EPILOG,
        formatter_class=_argparse.RawDescriptionHelpFormatter,
    )
    stats.add_argument("workflow", nargs="?", default="", help="one workflow (default: all)")
    stats.add_argument("--since", help="an ISO date or time, or an age like 2h or 7d")
    stats.add_argument("--until", help="an ISO date or time, or an age like 30m")
    stats.add_argument(
        "--limit",
        type=int,
        default=5000,
        metavar="N",
        help="count at most the newest N runs; default 5000",
    )
    stats.add_argument("--json", action="store_true")


def cmd_stats(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc

    from tandem.ledger.refusals import refusal_lines

    from .runs import parse_time

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    since = parse_time(args.since, "--since") if args.since else 0.0
    until = parse_time(args.until, "--until") if args.until else 0.0
    with control(config) as client:
        try:
            report = client.ledger(args.workflow, since, until, args.limit)
        except grpc.RpcError as error:
            raise rpc_error(error) from None
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    groups, migrations = report["groups"], report["migrations"]
    print(f"ledger of live runs and MCP sessions {_range(since, until)}")
    if report["truncated"]:
        print(f"(the newest {report['runs_read']} runs only: --limit; narrow with --since)")
    if not groups:
        print("no runs" + (f" of {args.workflow}" if args.workflow else "") + " in this range")
        return EXIT_OK
    for line in table(groups):
        print(line)
    for migration in migrations:
        print()
        for line in migration_lines(migration):
            print(line)
    if refused := refusal_lines(report.get("refusals", {})):
        print("\n" + "\n".join(refused))
    if report.get("escalations"):
        print()
        for line in escalation_lines(report["escalations"]):
            print(line)
    unpriced = sorted({m for g in groups for m in g["unpriced_models"]})
    if unpriced:
        print(
            f"\ncost unknown: no price for {', '.join(unpriced)}; add it under `prices:` in"
            " tandem.yaml (USD per million tokens: input, output, cache_write, cache_read)"
        )
    unknown = [g["version"] for g in groups if g["model_unknown"]]
    if unknown:
        print(
            f"\ncost unknown: no run of version {', '.join(unknown)} recorded which model it"
            " asked (no model.request events)"
        )
    if any(not g["configured"] for g in groups):
        print("\n* a one-off --coordinator run: not its version's configured coordinator")
    print(f"\n{NOTE}; the columns: tandem stats --help")
    return EXIT_OK


HEADER = (
    "WORKFLOW",
    "COORD",
    "VERSION",
    "RUNS",
    "OK",
    "FAIL",
    "FLAG",
    "P50",
    "P95",
    "TOOLS/RUN",
    "MODEL/RUN",
    "IN/RUN",
    "OUT/RUN",
    "COST/RUN",
    "COST",
    "PLANS/SHAPES",
    "SHADOW",
)


def table(groups: list[dict[str, Any]]) -> list[str]:
    rows = [HEADER] + [group_row(g) for g in groups]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    left = 3  # workflow, coordinator and version read left-aligned
    return [
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def group_row(group: dict[str, Any]) -> tuple[str, ...]:
    """One group's figures as the table shows them (the console's ledger page too)."""
    per_run = group["per_run"]
    shadows = group["shadows"]
    shadow = "-"
    if shadows["runs"]:
        shadow = f"{shadows['agreed']}/{shadows['runs']} {shadows['agreement']:.0%}"
    plans = group["plans"]
    return (
        group["workflow"],
        group["coordinator"] + ("" if group["configured"] else "*"),
        group["version"],
        str(group["runs"]),
        str(group["succeeded"]),
        str(group["failed"]),
        str(group["flagged"]),
        _duration(group["duration_s"]["p50"]),
        _duration(group["duration_s"]["p95"]),
        _mean(per_run["tool_calls"], 1),
        _mean(per_run["model_calls"], 1),
        _mean(per_run["all_input_tokens"]),
        _mean(per_run["output_tokens"]),
        _usd(per_run["cost"]) if group["runs"] else "-",
        _usd(group["cost_usd"]) if group["runs"] else "-",
        f"{plans['distinct_plans']}/{plans['trigger_shapes']}" if plans["trigger_shapes"] else "-",
        shadow,
    )


_LABELS = {
    "tokens": "tokens",
    "all_input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "  cache read",
    "cache_write_tokens": "  cache write",
    "model_calls": "model calls",
    "cost": "cost",
    "tool_calls": "tool calls",
    "p50_s": "p50 duration",
    "p95_s": "p95 duration",
}


def migration_lines(migration: dict[str, Any]) -> list[str]:
    before, after = migration["before"], migration["after"]
    changes = {c["figure"]: c for c in migration["per_run"]}
    lines = [
        f"migration {migration['workflow']}: {before['coordinator']} {before['version']}"
        f" ({before['runs']} runs) -> {after['coordinator']} {after['version']}"
        f" ({after['runs']} runs), per run:"
    ]
    for figure, change in changes.items():
        show = _usd if figure == "cost" else (_duration if figure.endswith("_s") else _mean)
        lines.append(
            f"  {_LABELS[figure]:<13}{show(change['before']):>12} -> "
            f"{show(change['after']):<12}{_percent(change['change_pct']):>9}"
        )
    return lines


def escalation_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Escalations per workflow and reason: the cases the script still has to learn."""
    lines = ["escalations: the cases the script handed to the model (tandem rewrite starts there)"]
    width = max(len(row["workflow"]) for row in rows)
    for row in rows:
        lines.append(
            f"  {row['workflow']:<{width}}  {row['runs']:>5}  {row['reason']}"
            f"  (last: {row['run_ids'][0]})"
        )
    return lines


def headline(migration: dict[str, Any]) -> str:
    """The migration in one line: tokens and cost per run before and after, and the cut."""
    changes = {c["figure"]: c for c in migration["per_run"]}
    tokens, cost = changes["tokens"], changes["cost"]
    return (
        f"{migration['before']['coordinator']} -> {migration['after']['coordinator']}:"
        f" tokens per run {_mean(tokens['before'])} -> {_mean(tokens['after'])}"
        f" ({_percent(tokens['change_pct'])}),"
        f" cost per run {_usd(cost['before'])} -> {_usd(cost['after'])}"
        f" ({_percent(cost['change_pct'])})"
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _range(since: float, until: float) -> str:
    def when(at: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))

    if since and until:
        return f"from {when(since)} to {when(until)}"
    if since:
        return f"since {when(since)}"
    return f"until {when(until)}" if until else "of all time"


def _compact(value: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _mean(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits is not None and value < 1000 else _compact(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    return f"{seconds:.1f}s" if seconds < 600 else f"{seconds / 60:.1f}m"


def _usd(cost: float | None) -> str:
    if cost is None:
        return "unknown"
    if 0 < cost < 0.01:
        return f"${cost:.4f}"
    return f"${cost:,.2f}"
