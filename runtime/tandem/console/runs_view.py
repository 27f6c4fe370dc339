"""The runs page's query: filters from the URL, a page of runs newest first, and the cursor
of the next page (keyset: the last run's time and id, so a deep page costs what the first
does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from tandem.cli.common import UsageError
from tandem.cli.runs import parse_time
from tandem.escalation import ESCALATED
from tandem.runs import RunManager
from tandem.store import ACTIVE, FINAL, MODES, RunQuery, RunRecord

PAGE_SIZE = 50
FILTERS = ("workflow", "coordinator", "status", "mode", "flagged", "since", "until")
COORDINATORS = ("llm", "script", "mcp", ESCALATED)
STATUSES = (*ACTIVE, *FINAL)


@dataclass
class RunsPage:
    filters: dict[str, str]
    runs: list[tuple[RunRecord, int]] = field(default_factory=list)  # with queue place
    next_cursor: str = ""
    error: str = ""

    @property
    def query_string(self) -> str:
        """The filters as set, for links and the live refresh."""
        return urlencode({k: v for k, v in self.filters.items() if v})

    def next_link(self) -> str:
        return "?" + urlencode(
            {**{k: v for k, v in self.filters.items() if v}, "after": self.next_cursor}
        )


def runs_page(runs: RunManager, params: QueryParams) -> RunsPage:
    filters = {key: params.get(key, "").strip() for key in FILTERS}
    page = RunsPage(filters)
    try:
        query = _query(filters, params.get("after", ""))
    except UsageError as error:
        page.error = str(error)
        return page
    records = runs.store.list(query)
    more = len(records) > PAGE_SIZE
    records = records[:PAGE_SIZE]
    page.runs = [(r, runs.queue_position(r.id, r)) for r in records]
    if more:
        last = records[-1]
        page.next_cursor = f"{last.created_at!r}_{last.id}"
    return page


def _query(filters: dict[str, str], after: str) -> RunQuery:
    for key, allowed in (
        ("coordinator", COORDINATORS),
        ("status", STATUSES),
        ("mode", MODES),
    ):
        if filters[key] and filters[key] not in allowed:
            raise UsageError(f"{key} {filters[key]!r}: expected one of {', '.join(allowed)}")
    until = parse_time(filters["until"], "until") if filters["until"] else float("inf")
    before_id = ""
    if after:
        stamp, _, before_id = after.partition("_")
        try:
            until = min(until, float(stamp))
        except ValueError:
            raise UsageError(f"after {after!r}: not a page of this list") from None
    return RunQuery(
        workflow=filters["workflow"],
        coordinator=filters["coordinator"],
        status=filters["status"],
        mode=filters["mode"],
        flagged=filters["flagged"] == "on",
        since=parse_time(filters["since"], "since") if filters["since"] else 0.0,
        until=until,
        before_id=before_id,
        limit=PAGE_SIZE + 1,
    )
