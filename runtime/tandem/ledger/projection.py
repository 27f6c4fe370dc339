"""What moving a workflow from the model to a script saves, projected from the ledger: the
per-run tokens and cost of its newest LLM group (`Group.per_run`), at the rate its runs
came in. A script asks no model, so a run it coordinates spends none of them; the rate is
the runs observed over the span from the group's first run to its last ((n - 1) runs per
span: n runs make n - 1 intervals). Fewer than two runs, or none apart in time, give no
rate, and so no projection: unknown, never guessed. Pure computation on the groups of a
ledger report (`Group.to_json`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DAY_S = 86_400.0
MONTH_DAYS = 30


@dataclass(frozen=True)
class Projection:
    version: str
    runs: int
    days: float  # the span the runs were observed over
    runs_per_day: float
    tokens_per_run: float
    cost_per_run: float | None  # None: a model without a price ran

    @property
    def tokens_per_day(self) -> float:
        return self.tokens_per_run * self.runs_per_day

    @property
    def cost_per_day(self) -> float | None:
        return None if self.cost_per_run is None else self.cost_per_run * self.runs_per_day

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "runs": self.runs,
            "days": self.days,
            "runs_per_day": self.runs_per_day,
            "tokens_per_run": self.tokens_per_run,
            "cost_per_run": self.cost_per_run,
            "tokens_per_day": self.tokens_per_day,
            "cost_per_day": self.cost_per_day,
        }


def script_savings(groups: Sequence[Mapping[str, Any]], workflow: str) -> Projection | None:
    """The projection for `workflow` from a ledger report's groups, or None."""
    llm = [
        g
        for g in groups
        if g.get("workflow") == workflow and g.get("coordinator") == "llm" and g.get("runs")
    ]
    if not llm:
        return None
    newest = max(llm, key=lambda g: g.get("last_run") or 0.0)
    first, last, runs = newest.get("first_run"), newest.get("last_run"), int(newest["runs"])
    if first is None or last is None or runs < 2 or last <= first:
        return None
    days = (last - first) / DAY_S
    per_run = newest.get("per_run") or {}
    return Projection(
        version=str(newest.get("version", "")),
        runs=runs,
        days=days,
        runs_per_day=(runs - 1) / days,
        tokens_per_run=float(per_run.get("tokens") or 0.0),
        cost_per_run=None if per_run.get("cost") is None else float(per_run["cost"]),
    )
