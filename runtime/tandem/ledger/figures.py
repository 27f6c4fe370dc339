"""The ledger's figures, per workflow, coordinator and workflow version: pure computation
from run records (with their events) and each version's model. No I/O.

Only `live` runs and MCP sessions (mode `mcp`, under coordinator `mcp`: the workflow's
tools called from an MCP client) are production traffic, so only they make the main
figures; dry runs, replays and shadows do not. Shadows make one figure of their own: how
often they agreed. A session's duration is how long it was open, and its coordinator is
never a workflow's configured one, so it takes no part in migrations.

- runs: live runs and MCP sessions created in the range, whatever their status.
- an escalated run (its script raised Escalate and the model took over; coordinator
  `script+llm`) counts under `script`, its model calls, tokens and cost with it: they are
  what running that script version costs. `ledger.escalations` counts them per reason.
- succeeded / failed / cancelled / unfinished: by status; failed is `failed`,
  `timed_out` or `interrupted`; unfinished is `queued` or `running`.
- flagged: runs a person flagged as wrong (`tandem runs flag`).
- p50 / p95 duration: `finished_at - started_at` (the run's own time, not its wait in
  the queue) of runs with both, by the nearest-rank method: the smallest duration that
  at least p% of the durations do not exceed (`sorted[ceil(p * n / 100) - 1]`), so every
  percentile is a duration some run really took.
- tool calls: the calls of the run's tool plan (below): its own `tool.call` events,
  reads of virtual files (`files.*`) left out for both coordinators (a script reads its
  files without a tool call, the model with `files.read`); per run is their mean over
  the group's runs.
- model calls and tokens: sums of the runs' recorded usage. Input tokens are every token
  the model read: uncached input + cache read + cache write (the cached parts are also
  given on their own). Total tokens are input + output, as `max_tokens` counts them.
- cost: each model call (a `model.response` event's usage) is priced with the model its
  `model.request` named; usage the events do not account for is priced with the
  version's model (`models`). A run with tokens from a model without a price has no cost,
  and neither has a run with tokens of no known model; then neither has its group:
  unknown, never guessed. Tokenless runs cost 0, whatever their model.
- plans: a run's tool plan is the ordered (tool, canonical JSON arguments) of its own
  calls, reads of virtual files (`files.*`) left out. Finished runs are grouped by the
  *shape* of their trigger: its JSON with every leaf replaced by its type name
  (`"string"`, `"integer"`, `"number"`, `"boolean"`, `"null"`), keys sorted, and a
  list by the distinct shapes of its items, so two pull_request deliveries for different
  PRs share a shape while a push and a pull_request do not. For each shape: how many
  distinct *tool sequences* (the plan's tool names in order, arguments aside), so a
  call's argument values (one PR or another) do not make a plan of their own.
- shadows: shadow runs whose source run is a run of this workflow, grouped under the
  shadow's own coordinator and version; agreed when the shadow succeeded and its plan
  diff agrees by `tandem_sdk.plan.diff_plans` (as `tandem shadow` counts), out of every
  shadow with a plan diff (those still running have none yet).
- migrations: a change of the workflow's *configured* coordinator (`coordinator:` in the
  version's workflow.yaml) between two versions, in time order. Only a group that ran
  with its version's configured coordinator and has a run that took a step (a tool call
  or a model answer) takes part, ordered by its first such run: a one-off
  `--coordinator` run, a shadow, a replay, or a run that failed before its first step
  (no API key) is never one side of a migration. Wherever the configured coordinator
  changes between consecutive such groups: the per-run figures before and after, and the
  change as a percentage of the before figure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from tandem_sdk.plan import canonical

from tandem.escalation import started_as
from tandem.replay.recording import attempted_plan, took_a_step
from tandem.store import RunRecord

from .prices import PriceTable

COUNTED_MODES = ("live", "mcp")  # production traffic: runs, and MCP sessions
FAILED = ("failed", "timed_out", "interrupted")
UNFINISHED = ("queued", "running")
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
READ_KEYS = ("input_tokens", "cache_read_tokens", "cache_write_tokens")  # what the model read
PER_RUN = ("all_input_tokens", *TOKEN_KEYS, "model_calls", "tool_calls")

GroupKey = tuple[str, str, str]  # workflow, coordinator, version


def percentile(values: Sequence[float], p: int) -> float | None:
    """Nearest rank: the smallest value that at least p% of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))  # ceil in integers: no float rounding
    return ordered[rank - 1]


def trigger_shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): trigger_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        shapes = {canonical(shape): shape for shape in map(trigger_shape, value)}
        return [shapes[key] for key in sorted(shapes)]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def tool_plan(run: RunRecord) -> tuple[tuple[str, str], ...]:
    return tuple(call.key for call in attempted_plan(run))


def tool_sequence(run: RunRecord) -> tuple[str, ...]:
    return tuple(call.tool for call in attempted_plan(run))


def models_from_versions(contents: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """version -> model, from the store's kept versions (`content["spec"]["model"]`)."""
    models = {}
    for version, content in contents.items():
        model = (content.get("spec") or {}).get("model")
        if isinstance(model, str) and model:
            models[version] = model
    return models


def models_from_events(runs: Iterable[RunRecord]) -> dict[str, str]:
    """version -> model, from the coordinator's own `model.request` events: the LLM
    coordinator always asks the version's model (a subagent may be told another)."""
    models: dict[str, str] = {}
    for run in runs:
        for event in run.events:
            model = event.data.get("model")
            if event.kind == "model.request" and not event.data.get("subagent") and model:
                models.setdefault(run.workflow_version, str(model))
                break
    return models


def run_cost(
    run: RunRecord, model: str | None, prices: PriceTable
) -> tuple[float, set[str | None]]:
    """The run's cost in USD, and the models whose tokens it could not price (None: tokens
    whose model is not known at all)."""
    asked: dict[tuple[Any, Any], str] = {}
    parts: list[tuple[str | None, dict[str, int]]] = []
    for event in run.events:
        key = (event.data.get("subagent"), event.data.get("turn"))
        if event.kind == "model.request" and event.data.get("model"):
            asked[key] = str(event.data["model"])
        elif event.kind == "model.response" and isinstance(event.data.get("usage"), dict):
            usage = event.data["usage"]
            parts.append((asked.get(key, model), {k: int(usage.get(k) or 0) for k in TOKEN_KEYS}))
    counted = {k: sum(usage[k] for _, usage in parts) for k in TOKEN_KEYS}
    rest = {k: max(0, int(run.usage.get(k, 0)) - counted[k]) for k in TOKEN_KEYS}
    parts.append((model, rest))
    cost, unpriced = 0.0, set[str | None]()
    for part_model, usage in parts:
        if not any(usage.values()):
            continue
        price = prices.price(part_model) if part_model else None
        if price is None:
            unpriced.add(part_model or None)
        else:
            cost += price.cost(usage)
    return cost, unpriced


@dataclass(frozen=True)
class ShapePlans:
    shape: str  # canonical JSON of the trigger's shape
    runs: int
    distinct_plans: int

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "runs": self.runs, "distinct_plans": self.distinct_plans}


@dataclass(frozen=True)
class Group:
    workflow: str
    coordinator: str
    version: str
    model: str | None = None
    first_run: float | None = None
    last_run: float | None = None
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0
    flagged: int = 0
    p50_s: float | None = None
    p95_s: float | None = None
    totals: dict[str, int] = field(default_factory=dict)  # PER_RUN keys
    cost: float | None = 0.0
    unpriced_models: tuple[str, ...] = ()  # models without a price
    model_unknown: bool = False  # tokens whose model nothing recorded
    shapes: tuple[ShapePlans, ...] = ()
    shadows: int = 0
    shadows_agreed: int = 0
    configured: bool = True  # ran with its version's configured coordinator
    first_step: float | None = None  # the first run that took a step (tool call, model answer)

    @property
    def key(self) -> GroupKey:
        return self.workflow, self.coordinator, self.version

    @property
    def tokens(self) -> int:
        return sum(self.totals.get(k, 0) for k in TOKEN_KEYS)

    @property
    def migrates(self) -> bool:
        """Whether the group may be one side of a migration."""
        return self.configured and self.first_step is not None

    @property
    def distinct_plans(self) -> int:
        return sum(s.distinct_plans for s in self.shapes)

    @property
    def shadow_agreement(self) -> float | None:
        return self.shadows_agreed / self.shadows if self.shadows else None

    def per_run(self) -> dict[str, float | None]:
        """Means over the group's runs: what a migration compares."""
        if not self.runs:
            return {**dict.fromkeys(PER_RUN), "tokens": None, "cost": None}
        means: dict[str, float | None] = {k: self.totals.get(k, 0) / self.runs for k in PER_RUN}
        means["tokens"] = self.tokens / self.runs
        means["cost"] = None if self.cost is None else self.cost / self.runs
        return means

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "coordinator": self.coordinator,
            "version": self.version,
            "model": self.model,
            "first_run": self.first_run,
            "last_run": self.last_run,
            "runs": self.runs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "unfinished": self.unfinished,
            "flagged": self.flagged,
            "duration_s": {"p50": self.p50_s, "p95": self.p95_s},
            **{k: self.totals.get(k, 0) for k in PER_RUN},
            "tokens": self.tokens,
            "cost_usd": self.cost,
            "unpriced_models": list(self.unpriced_models),
            "model_unknown": self.model_unknown,
            "per_run": self.per_run(),
            "plans": {
                "trigger_shapes": len(self.shapes),
                "distinct_plans": self.distinct_plans,
                "by_shape": [s.to_json() for s in self.shapes],
            },
            "configured": self.configured,
            "shadows": {
                "runs": self.shadows,
                "agreed": self.shadows_agreed,
                "agreement": self.shadow_agreement,
            },
        }


@dataclass(frozen=True)
class Change:
    figure: str
    before: float | None
    after: float | None

    @property
    def percent(self) -> float | None:
        """(after - before) / before, in percent; None when there is nothing to divide by."""
        if self.before is None or self.after is None or self.before == 0:
            return None
        return (self.after - self.before) / self.before * 100

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "before": self.before,
            "after": self.after,
            "change_pct": self.percent,
        }


COMPARED: tuple[str, ...] = ("tokens", "all_input_tokens", "output_tokens", "cache_read_tokens")
COMPARED += ("cache_write_tokens", "model_calls", "cost", "tool_calls", "p50_s", "p95_s")


@dataclass(frozen=True)
class Migration:
    workflow: str
    before: Group
    after: Group

    @property
    def changes(self) -> tuple[Change, ...]:
        before = {**self.before.per_run(), "p50_s": self.before.p50_s, "p95_s": self.before.p95_s}
        after = {**self.after.per_run(), "p50_s": self.after.p50_s, "p95_s": self.after.p95_s}
        return tuple(Change(name, before[name], after[name]) for name in COMPARED)

    def change(self, figure: str) -> Change:
        return next(c for c in self.changes if c.figure == figure)

    def to_json(self) -> dict[str, Any]:
        side = ("coordinator", "version", "model", "runs", "first_run", "last_run")
        return {
            "workflow": self.workflow,
            "before": {k: getattr(self.before, k) for k in side},
            "after": {k: getattr(self.after, k) for k in side},
            "per_run": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True)
class Ledger:
    groups: tuple[Group, ...]
    migrations: tuple[Migration, ...]

    def group(self, workflow: str, coordinator: str, version: str) -> Group:
        return next(g for g in self.groups if g.key == (workflow, coordinator, version))

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [g.to_json() for g in self.groups],
            "migrations": [m.to_json() for m in self.migrations],
        }


def compute(
    runs: Iterable[RunRecord],
    models: Mapping[str, str],
    prices: PriceTable,
    *,
    workflow_of: Mapping[str, str] | None = None,
    configured: Mapping[str, str] | None = None,
) -> Ledger:
    """The ledger of `runs` (live ones with their events). `models` maps a version to
    the model its spec names; `workflow_of` names the workflow of source runs that are
    not among `runs` (else a shadow counts for its own workflow, which is its source's);
    `configured` maps a version to the coordinator its workflow.yaml names (a version
    missing from it takes no part in migrations)."""
    runs = list(runs)
    known = {**(workflow_of or {}), **{r.id: r.workflow for r in runs}}
    live: dict[GroupKey, list[RunRecord]] = defaultdict(list)
    shadows: dict[GroupKey, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.mode in COUNTED_MODES:  # an escalated run is its script's: its cost too
            live[(run.workflow, started_as(run.coordinator), run.workflow_version)].append(run)
        elif run.mode == "shadow" and run.plan_diff is not None:
            workflow = known.get(run.source_run or "", run.workflow)
            shadows[(workflow, run.coordinator, run.workflow_version)].append(run)
    groups = [
        _group(
            key,
            live.get(key, []),
            shadows.get(key, []),
            models.get(key[2]),
            prices,
            (configured or {}).get(key[2]) == key[1],
        )
        for key in set(live) | set(shadows)
    ]
    groups.sort(key=lambda g: (g.workflow, g.first_run is None, g.first_run or 0.0, g.key))
    return Ledger(tuple(groups), tuple(_migrations(groups)))


def _group(
    key: GroupKey,
    runs: list[RunRecord],
    shadows: list[RunRecord],
    model: str | None,
    prices: PriceTable,
    configured: bool,
) -> Group:
    statuses = Counter(run.status for run in runs)
    durations = [
        run.finished_at - run.started_at
        for run in runs
        if run.started_at is not None and run.finished_at is not None
    ]
    totals = {
        k: sum(int(run.usage.get(k, 0)) for run in runs) for k in (*TOKEN_KEYS, "model_calls")
    }
    totals["all_input_tokens"] = sum(totals[k] for k in READ_KEYS)
    totals["tool_calls"] = sum(len(attempted_plan(run)) for run in runs)
    usd, unpriced = 0.0, set[str | None]()
    for run in runs:
        run_usd, missing = run_cost(run, model, prices)
        usd += run_usd
        unpriced |= missing
    plans: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for run in runs:
        if run.status in UNFINISHED:
            continue
        shape = canonical(trigger_shape(run.trigger))
        plans[shape].add(tool_sequence(run))
        counts[shape] += 1
    created = [run.created_at for run in runs]
    stepped = [run.created_at for run in runs if took_a_step(run)]
    return Group(
        *key,
        model=model,
        first_run=min(created) if created else None,
        last_run=max(created) if created else None,
        runs=len(runs),
        succeeded=statuses["succeeded"],
        failed=sum(statuses[s] for s in FAILED),
        cancelled=statuses["cancelled"],
        unfinished=sum(statuses[s] for s in UNFINISHED),
        flagged=sum(1 for run in runs if run.flag is not None),
        p50_s=percentile(durations, 50),
        p95_s=percentile(durations, 95),
        totals=totals,
        cost=None if unpriced else usd,
        unpriced_models=tuple(sorted(m for m in unpriced if m is not None)),
        model_unknown=None in unpriced,
        shapes=tuple(ShapePlans(s, counts[s], len(plans[s])) for s in sorted(plans)),
        shadows=len(shadows),
        shadows_agreed=sum(
            1
            for s in shadows
            if s.status == "succeeded" and (s.plan_diff or {}).get("agree") is True
        ),
        configured=configured,
        first_step=min(stepped) if stepped else None,
    )


def _migrations(groups: list[Group]) -> list[Migration]:
    """Consecutive groups of a workflow that may migrate (by their first run that took a
    step) whose configured coordinator differs."""
    migrations = []
    by_workflow: dict[str, list[Group]] = defaultdict(list)
    for group in groups:
        if group.runs and group.migrates:
            by_workflow[group.workflow].append(group)
    for workflow, listed in sorted(by_workflow.items()):
        ordered = sorted(listed, key=lambda g: (g.first_step or 0.0, g.key))
        for before, after in pairwise(ordered):
            if before.coordinator != after.coordinator:
                migrations.append(Migration(workflow, before, after))
    return migrations
