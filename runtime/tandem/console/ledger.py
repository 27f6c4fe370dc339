"""The ledger page's data: `tandem stats` for a workflow and a time range, its groups as
the CLI's table shows them, each migration's before and after, and the charts of tokens
and cost per run, from the same runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup
from starlette.datastructures import QueryParams

from tandem.cli.common import UsageError
from tandem.cli.runs import parse_time
from tandem.cli.stats import HEADER, group_row, migration_lines
from tandem.ledger.prices import PriceTable
from tandem.ledger.report import read_runs, report_of_runs, version_facts
from tandem.runs import RunManager

from .chart import COST, TOKENS, run_series, svg_chart

# Runs a page counts at most, as `tandem stats` without --limit.
LIMIT = 5000


@dataclass
class LedgerView:
    filters: dict[str, str]
    header: tuple[str, ...] = HEADER
    rows: list[tuple[str, ...]] = field(default_factory=list)
    migrations: list[list[str]] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    truncated: bool = False
    error: str = ""
    charts: list[Markup] = field(default_factory=list)


def ledger_view(runs: RunManager, prices: PriceTable, params: QueryParams) -> LedgerView:
    filters = {key: params.get(key, "").strip() for key in ("workflow", "since", "until")}
    view = LedgerView(filters)
    try:
        since = parse_time(filters["since"], "since") if filters["since"] else 0.0
        until = parse_time(filters["until"], "until") if filters["until"] else 0.0
    except UsageError as error:
        view.error = str(error)
        return view
    read, truncated = read_runs(runs.store, filters["workflow"], since, until, LIMIT)
    report = report_of_runs(runs.store, prices, read, since, until, truncated)
    series = run_series(read, version_facts(runs.store, read)[0], prices)
    if series:
        view.charts = [
            svg_chart(series, TOKENS, "chart-tokens"),
            svg_chart(series, COST, "chart-cost"),
        ]
    view.rows = [group_row(group) for group in report["groups"]]
    view.migrations = [migration_lines(m) for m in report["migrations"]]
    view.unpriced = sorted({m for g in report["groups"] for m in g["unpriced_models"]})
    view.truncated = bool(report["truncated"])
    return view
