"""The ledger page's data: `tandem stats` for a workflow and a time range, its groups as
the CLI's table shows them, and each migration's before and after."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import QueryParams

from tandem.cli.common import UsageError
from tandem.cli.runs import parse_time
from tandem.cli.stats import HEADER, group_row, migration_lines
from tandem.ledger.prices import PriceTable
from tandem.ledger.report import ledger_report
from tandem.runs import RunManager

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


def ledger_view(runs: RunManager, prices: PriceTable, params: QueryParams) -> LedgerView:
    filters = {key: params.get(key, "").strip() for key in ("workflow", "since", "until")}
    view = LedgerView(filters)
    try:
        since = parse_time(filters["since"], "since") if filters["since"] else 0.0
        until = parse_time(filters["until"], "until") if filters["until"] else 0.0
    except UsageError as error:
        view.error = str(error)
        return view
    report = ledger_report(runs.store, prices, filters["workflow"], since, until, LIMIT)
    view.rows = [group_row(group) for group in report["groups"]]
    view.migrations = [migration_lines(m) for m in report["migrations"]]
    view.unpriced = sorted({m for g in report["groups"] for m in g["unpriced_models"]})
    view.truncated = bool(report["truncated"])
    return view
