"""`tandem stats [WORKFLOW]`: the ledger. Per workflow, coordinator and version: runs,
failures, flags, latency, tool and model calls, tokens, cost, distinct tool plans per
trigger shape and shadow agreement; then each migration's figures before and after.

Only live runs count (dry runs, replays and shadows are not production traffic); shadows
give only their agreement. The definitions are in `tandem.ledger.figures`.

Where the numbers come from, over Control alone: ListRuns (paged, newest first) for the
runs and their usage, GetRunTrace for each live run's events (tool calls, plans, model
calls). The model of each model call is the one its `model.request` event names; usage
without such events is priced with the version's model, learnt from the coordinator's
own `model.request` events in other runs of that version. ListWorkflows carries no model,
and the kept workflow versions (whose spec names it) are not served over Control.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, UsageError, control, rpc_error

if TYPE_CHECKING:  # imported when `tandem stats` runs, not by every command's parser
    from tandem.config import ProjectConfig
    from tandem.ledger import Group, Ledger, Migration
    from tandem.ledger.prices import PriceTable
    from tandem.store import RunRecord

    from .control_client import ControlClient

PAGE = 500
NOTE = (
    "only live runs count: dry runs, replays and shadows are not production traffic"
    " (shadows give only SHADOW, their agreement with the live run)"
)


def add_parser(commands: Any) -> None:
    stats = commands.add_parser(
        "stats",
        help="the ledger: runs, failures, latency, tokens, cost and tool plans per workflow,"
        " coordinator and version, and each migration before and after",
    )
    stats.add_argument("workflow", nargs="?", default="", help="one workflow (default: all)")
    stats.add_argument("--since", help="an ISO date or time, or an age like 2h or 7d")
    stats.add_argument("--until", help="an ISO date or time, or an age like 30m")
    stats.add_argument(
        "--limit",
        type=int,
        default=5000,
        metavar="N",
        help="count at most the newest N runs (each live run's trace is read); default 5000",
    )
    stats.add_argument("--json", action="store_true")


def cmd_stats(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc

    from tandem.ledger import compute, load_prices, models_from_events

    from .runs import parse_time

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    prices = load_prices(config.root)
    since = parse_time(args.since, "--since") if args.since else 0.0
    until = parse_time(args.until, "--until") if args.until else 0.0
    with control(config) as client:
        try:
            listed, truncated = list_runs(client, args.workflow, since, until, args.limit)
            runs = [client.run(r.id) if r.mode == "live" else r for r in listed]
        except grpc.RpcError as error:
            raise rpc_error(error) from None
    models = models_from_events(runs)
    ledger = compute(runs, models, prices)
    if args.json:
        used = set(models.values()) | {
            str(e.data["model"])
            for run in runs
            if run.mode == "live"
            for e in run.events
            if e.kind == "model.request" and e.data.get("model")
        }
        report = _json(ledger, prices, used, since, until, len(runs), truncated)
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(f"ledger of live runs {_range(since, until)}")
    if truncated:
        print(f"(the newest {len(runs)} runs only: --limit; narrow with --since or WORKFLOW)")
    if not ledger.groups:
        print("no runs" + (f" of {args.workflow}" if args.workflow else "") + " in this range")
        return EXIT_OK
    for line in table(ledger.groups):
        print(line)
    for migration in ledger.migrations:
        print()
        for line in migration_lines(migration):
            print(line)
    unpriced = sorted({m for g in ledger.groups for m in g.unpriced_models})
    if unpriced:
        print(
            f"\ncost unknown: no price for {', '.join(unpriced)}; add it under `prices:` in"
            " tandem.yaml (USD per million tokens: input, output, cache_write, cache_read)"
        )
    unknown = [g.version for g in ledger.groups if g.model_unknown]
    if unknown:
        print(
            f"\ncost unknown: no run of version {', '.join(unknown)} recorded which model it"
            " asked (no model.request events)"
        )
    print(f"\n{NOTE}; PLANS/SHAPES: distinct tool plans / trigger shapes")
    return EXIT_OK


def list_runs(
    client: ControlClient, workflow: str, since: float, until: float, limit: int
) -> tuple[list[RunRecord], bool]:
    """Every run in the range, newest first, paged by moving `until` back; True when
    `limit` cut the list short."""
    found: dict[str, RunRecord] = {}
    bound = until
    while True:
        # Excluded runs (and shadows of them) are not counted.
        page = client.runs(workflow, "", PAGE, since=since, until=bound, without_excluded=True)
        new = [run for run in page if run.id not in found]
        for run in new:
            if len(found) == limit:
                return list(found.values()), True
            found[run.id] = run
        if len(page) < PAGE or not new:
            return list(found.values()), False
        bound = min(run.created_at for run in page)  # inclusive: repeats are skipped


def table(groups: tuple[Group, ...]) -> list[str]:
    header = (
        "WORKFLOW",
        "COORD",
        "VERSION",
        "RUNS",
        "OK",
        "FAIL",
        "FLAG",
        "P50",
        "P95",
        "CALLS/RUN",
        "MODEL",
        "IN",
        "OUT",
        "C-READ",
        "C-WRITE",
        "COST",
        "PLANS/SHAPES",
        "SHADOW",
    )
    rows = [header] + [_row(g) for g in groups]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    left = 3  # workflow, coordinator and version read left-aligned
    return [
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _row(group: Group) -> tuple[str, ...]:
    per_run = group.per_run()
    totals = group.totals
    shadow = "-"
    if group.shadows:
        shadow = (
            f"{group.shadows_agreed}/{group.shadows} {group.shadows_agreed / group.shadows:.0%}"
        )
    return (
        group.workflow,
        group.coordinator,
        group.version,
        str(group.runs),
        str(group.succeeded),
        str(group.failed),
        str(group.flagged),
        _duration(group.p50_s),
        _duration(group.p95_s),
        "-" if per_run["tool_calls"] is None else f"{per_run['tool_calls']:.1f}",
        _compact(totals.get("model_calls", 0)),
        _compact(totals.get("input_tokens", 0)),
        _compact(totals.get("output_tokens", 0)),
        _compact(totals.get("cache_read_tokens", 0)),
        _compact(totals.get("cache_write_tokens", 0)),
        _usd(group.cost) if group.runs else "-",
        f"{group.distinct_plans}/{len(group.shapes)}" if group.shapes else "-",
        shadow,
    )


_LABELS = {
    "tokens": "tokens",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "model_calls": "model calls",
    "cost": "cost",
    "tool_calls": "tool calls",
    "p50_s": "p50 duration",
    "p95_s": "p95 duration",
}


def migration_lines(migration: Migration) -> list[str]:
    before, after = migration.before, migration.after
    lines = [
        f"{migration.workflow}: {before.coordinator} {before.version} ({before.runs} runs)"
        f" -> {after.coordinator} {after.version} ({after.runs} runs), per run:"
    ]
    for change in migration.changes:
        show = (
            _usd
            if change.figure == "cost"
            else (_duration if change.figure.endswith("_s") else _mean)
        )
        percent = "n/a" if change.percent is None else f"{change.percent:+.1f}%"
        lines.append(
            f"  {_LABELS[change.figure]:<13}{show(change.before):>12} -> "
            f"{show(change.after):<12}{percent:>9}"
        )
    return lines


def _json(
    ledger: Ledger,
    prices: PriceTable,
    models: set[str],
    since: float,
    until: float,
    read: int,
    truncated: bool,
) -> dict[str, Any]:
    return {
        "since": since or None,
        "until": until or None,
        "counted": "live runs; shadows only for their agreement",
        "runs_read": read,
        "truncated": truncated,
        **ledger.to_json(),
        # The price each model in these runs was charged at; null: no price, cost unknown.
        "prices": {m: (p.to_json() if (p := prices.price(m)) else None) for m in sorted(models)},
    }


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


def _mean(value: float | None) -> str:
    return "-" if value is None else _compact(value)


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
