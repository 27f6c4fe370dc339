"""The ledger (`tandem stats`): figures over a seeded run store are exact, down to the
cent, and the CLI shows them through a real host."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, tandem
from tandem.ledger import compute, default_prices, load_prices, models_from_versions
from tandem.ledger.figures import percentile, tool_plan, trigger_shape
from tandem.store import Event, RunQuery, RunRecord, RunStore
from tandem_sdk.errors import DefinitionError

T0 = 1_800_000_000.0  # 2027-01-15; each run starts 1 s after it is created
V1, V2, V3 = "11111111aaaaaaaa", "22222222bbbbbbbb", "33333333cccccccc"
TRIAGE, HELLO = "44444444dddddddd", "55555555eeeeeeee"
SONNET = "claude-sonnet-5-5"  # $2 in, $10 out, $2.50 cache write, $0.20 cache read
HAIKU = "claude-haiku-4-5"  # $1 in, $5 out
LLM1, LLM2 = ("pr_merged", V1, "llm"), ("pr_merged", V2, "llm")
SCRIPT3, SHADOW2 = ("pr_merged", V3, "script"), ("pr_merged", V2, "script")
NO_TOKENS = dict.fromkeys(
    ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "model_calls"), 0
)


def usage(i: int = 0, o: int = 0, cr: int = 0, cw: int = 0, calls: int = 0) -> dict[str, int]:
    return {
        "input_tokens": i,
        "output_tokens": o,
        "cache_read_tokens": cr,
        "cache_write_tokens": cw,
        "model_calls": calls,
    }


def pull_request(number: int, delivery: str) -> dict[str, Any]:
    return {
        "trigger": "webhook",
        "path": "/hooks/github",
        "event": "pull_request",
        "delivery": delivery,
        "payload": {"action": "closed", "number": number, "merged": True, "labels": ["a", "b"]},
    }


def status(number: int) -> tuple[str, dict[str, Any]]:
    return "github.pr_status", {"url": f"https://github.com/o/r/pull/{number}"}


def react(ts: str) -> tuple[str, dict[str, Any]]:
    return "slack.add_reaction", {"channel": "eng", "ts": ts, "name": "merged"}


class Seeder:
    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.count = 0

    def run(
        self,
        group: tuple[str, str, str],  # workflow, version, coordinator
        *,
        at: float,
        took: float,
        trigger: Any = None,
        status: str = "succeeded",
        used: dict[str, int] | None = None,
        calls: list[tuple[str, dict[str, Any]]] | tuple[()] = (),
        events: list[tuple[str, dict[str, Any]]] | tuple[()] = (),
        mode: str = "live",
        source: str | None = None,
        finished: bool = True,
    ) -> str:
        self.count += 1
        run_id = f"run{self.count:02d}"
        workflow, version, coordinator = group
        record = RunRecord(
            id=run_id,
            workflow=workflow,
            workflow_version=version,
            coordinator=coordinator,
            trigger=trigger,
            status="queued",
            created_at=T0 + at,
            mode=mode,
            source_run=source,
        )
        self.store.create(record)
        self.store.mark_started(run_id, T0 + at + 1)
        trace = [
            ("tool.call", {"tool": t, "executed": True, "source": "plugin", "arguments": a})
            for t, a in calls
        ] + list(events)
        for seq, (kind, data) in enumerate(trace, start=1):
            self.store.append_event(run_id, Event(seq, T0 + at + 1, kind, data))
        if finished:
            self.store.finish(run_id, status, None, None, used or NO_TOKENS, T0 + at + 1 + took)
        return run_id


def seed(store: RunStore) -> dict[str, str]:
    """pr_merged: two prompt versions (v1, v2), then the script (v3); v2 shadowed by the
    script. triage: a model with no price. hello: a script that spends no tokens."""
    for version, model in ((V1, SONNET), (V2, SONNET), (V3, SONNET), (TRIAGE, "acme-large")):
        name = "triage" if version == TRIAGE else "pr_merged"
        coordinator = "script" if version == V3 else "llm"
        spec = {"name": name, "model": model, "coordinator": coordinator}
        store.keep_version(version, name, {"spec": spec, "files": {}})
    s = Seeder(store)
    ids: dict[str, str] = {}
    heavy = usage(100_000, 10_000, 200_000, 20_000, 4)  # $0.39 on Sonnet 5.5
    # v1: 4 runs of 2, 4, 6, 8 s.
    ids["v1a"] = s.run(
        LLM1,
        at=0,
        took=2,
        trigger=pull_request(101, "d1"),
        used=heavy,
        calls=[("files.read", {"path": "team.md"}), status(101), react("1")],
    )
    s.run(
        LLM1,
        at=10,
        took=4,
        trigger=pull_request(102, "d2"),
        used=heavy,
        calls=[status(102), react("2")],
        status="failed",
    )
    # The same pull request again: the same plan, its arguments in another key order; a
    # subagent's call is not the run's own.
    s.run(
        LLM1,
        at=20,
        took=6,
        trigger=pull_request(101, "d3"),
        used=heavy,
        calls=[
            status(101),
            ("slack.add_reaction", {"name": "merged", "ts": "1", "channel": "eng"}),
        ],
        events=[
            (
                "tool.call",
                {
                    "tool": "slack.get_messages",
                    "subagent": "sub-1",
                    "arguments": {"channel": "eng"},
                },
            )
        ],
    )
    # A schedule slot (another trigger shape), and a subagent on Haiku: its call is priced
    # as Haiku, the rest as the model its request named.
    s.run(
        LLM1,
        at=30,
        took=8,
        trigger={"slot": "2027-01-15T08:00:00"},
        used=heavy,
        calls=[("slack.get_messages", {"channel": "eng"})],
        events=[
            ("model.request", {"turn": 1, "model": SONNET}),
            ("model.response", {"turn": 1, "usage": usage(60_000, 6_000, 200_000, 20_000)}),
            ("model.request", {"turn": 1, "model": HAIKU, "subagent": "sub-2"}),
            ("model.response", {"turn": 1, "subagent": "sub-2", "usage": usage(40_000, 4_000)}),
        ],
    )
    store.flag(ids["v1a"], {"reason": "reacted to an open PR", "calls": [1]})
    # v2: 2 runs of 3 and 5 s, $0.17 each; each shadowed by the script.
    light = usage(50_000, 5_000, 100_000, 0, 2)
    v2a = s.run(
        LLM2,
        at=1000,
        took=3,
        trigger=pull_request(104, "d4"),
        used=light,
        calls=[status(104), react("4")],
    )
    v2b = s.run(
        LLM2,
        at=1010,
        took=5,
        trigger=pull_request(105, "d5"),
        used=light,
        calls=[status(105), react("5")],
    )
    ids["v2b"] = v2b
    for source, agree in ((v2a, True), (v2b, False)):
        shadow = s.run(
            SHADOW2,
            at=1020,
            took=1,
            mode="shadow",
            source=source,
            trigger=pull_request(0, "x"),
            calls=[status(1)],
        )
        store.set_plan_diff(
            shadow, {"primary": source, "agree": agree, "summary": "", "entries": []}
        )
    s.run(SHADOW2, at=1030, took=1, mode="shadow", source=v2a, finished=False)
    # v3, the script: 3 runs of 0.5, 0.25 and 1 s; one asks a subagent on Haiku ($0.02).
    s.run(
        SCRIPT3,
        at=2000,
        took=0.5,
        trigger=pull_request(106, "d6"),
        calls=[status(106), react("6")],
    )
    s.run(
        SCRIPT3,
        at=2010,
        took=0.25,
        trigger=pull_request(107, "d7"),
        calls=[status(107), react("7")],
        used=usage(10_000, 2_000, calls=1),
        events=[
            ("model.request", {"turn": 1, "model": HAIKU, "subagent": "sub-3"}),
            ("model.response", {"turn": 1, "subagent": "sub-3", "usage": usage(10_000, 2_000)}),
        ],
    )
    s.run(
        SCRIPT3,
        at=2020,
        took=1.0,
        trigger=pull_request(106, "d8"),
        calls=[status(106), react("6")],
    )
    # Not production traffic: none of these count.
    s.run(SCRIPT3, at=2030, took=9, mode="dry_run", used=heavy)
    s.run(("pr_merged", V3, "llm"), at=2040, took=9, mode="replay", source=v2a, used=heavy)
    # A model without a price, and a script that spends nothing.
    s.run(("triage", TRIAGE, "llm"), at=3000, took=2, used=usage(1_000, 100, calls=1))
    s.run(
        ("hello", HELLO, "script"),
        at=3000,
        took=0.5,
        trigger={"name": "ada"},
        calls=[("state.increment", {"key": "n"})],
    )
    return ids


def ledger_of(store: RunStore) -> Any:
    runs = [store.get(r.id) for r in store.list(RunQuery(limit=1000))]
    versions = {v: c for v in (V1, V2, V3, TRIAGE, HELLO) if (c := store.version_content(v))}
    configured = {v: c["spec"]["coordinator"] for v, c in versions.items()}
    models = models_from_versions(versions)
    return compute([r for r in runs if r], models, default_prices(), configured=configured)


def test_stats_over_a_seeded_store_give_the_exact_figures(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite3")
    seed(store)
    ledger = ledger_of(store)
    assert [g.key for g in ledger.groups] == [
        ("hello", "script", HELLO),
        ("pr_merged", "llm", V1),
        ("pr_merged", "llm", V2),
        ("pr_merged", "script", V3),
        ("pr_merged", "script", V2),  # shadows only: no live run
        ("triage", "llm", TRIAGE),
    ]

    v1 = ledger.group("pr_merged", "llm", V1)
    assert (v1.runs, v1.succeeded, v1.failed, v1.flagged, v1.model) == (4, 3, 1, 1, SONNET)
    assert (v1.p50_s, v1.p95_s) == (4.0, 8.0)  # nearest rank of 2, 4, 6, 8
    assert v1.totals == {
        "input_tokens": 400_000,
        "output_tokens": 40_000,
        "cache_read_tokens": 800_000,
        "cache_write_tokens": 80_000,
        "model_calls": 16,
        "all_input_tokens": 1_280_000,  # input + cache read + cache write
        "tool_calls": 7,  # 2 + 2 + 2 (not the subagent's) + 1; files.read left out
    }
    assert v1.tokens == 1_320_000
    # 3 runs x $0.39 on Sonnet; the fourth: Sonnet $0.27 + its Haiku subagent $0.06.
    assert v1.cost == pytest.approx(1.50, abs=1e-9)
    assert round(v1.cost, 2) == 1.50
    assert v1.per_run()["tool_calls"] == 1.75
    # Two shapes: three pull_request deliveries (one tool sequence) and a schedule.
    assert [(s.runs, s.distinct_plans) for s in v1.shapes] == [(3, 1), (1, 1)]
    assert (v1.distinct_plans, v1.shadows) == (2, 0)

    v2 = ledger.group("pr_merged", "llm", V2)
    assert (v2.runs, v2.p50_s, v2.p95_s) == (2, 3.0, 5.0)
    assert v2.cost == pytest.approx(0.34, abs=1e-9)
    assert [(s.runs, s.distinct_plans) for s in v2.shapes] == [(2, 1)]

    shadows = ledger.group("pr_merged", "script", V2)
    assert (shadows.runs, shadows.shadows, shadows.shadows_agreed) == (0, 2, 1)
    assert shadows.shadow_agreement == 0.5  # the one still running has no diff yet

    v3 = ledger.group("pr_merged", "script", V3)
    assert (v3.runs, v3.succeeded, v3.failed, v3.flagged) == (3, 3, 0, 0)
    assert (v3.p50_s, v3.p95_s) == (0.5, 1.0)  # the dry run's 9 s does not count
    assert v3.totals["input_tokens"] == 10_000 and v3.totals["model_calls"] == 1
    assert v3.cost == pytest.approx(0.02, abs=1e-9)  # the subagent's Haiku, not Sonnet
    assert (v3.distinct_plans, len(v3.shapes)) == (1, 1)

    triage = ledger.group("triage", "llm", TRIAGE)
    assert (triage.cost, triage.unpriced_models) == (None, ("acme-large",))
    hello = ledger.group("hello", "script", HELLO)
    assert (hello.model, hello.cost) == (None, 0.0)  # no model known, and none needed

    [migration] = ledger.migrations
    assert (migration.before.key, migration.after.key) == (v2.key, v3.key)
    tokens, cost = migration.change("tokens"), migration.change("cost")
    assert (tokens.before, tokens.after) == (155_000, 4_000)
    assert tokens.percent == pytest.approx(-97.419355, abs=1e-6)
    assert cost.before == pytest.approx(0.17) and cost.after == pytest.approx(0.02 / 3)
    assert cost.percent == pytest.approx(-96.078431, abs=1e-6)
    assert migration.change("cache_read_tokens").percent == -100.0
    assert migration.change("cache_write_tokens").percent is None  # nothing before
    assert migration.change("model_calls").percent == pytest.approx(-83.333333, abs=1e-6)
    assert migration.change("tool_calls").percent == 0.0
    assert migration.change("p50_s").percent == pytest.approx(-83.333333, abs=1e-6)
    json.dumps(ledger.to_json())  # serialisable as it stands


V4 = "44444444ffffffff"


def test_a_migration_is_a_change_of_the_configured_coordinator(tmp_path: Path) -> None:
    from tandem.ledger.report import ledger_report

    store = RunStore(tmp_path / "runs.sqlite3")
    seed(store)
    s = Seeder(store)
    s.count = 100
    # After the script took over (v3): a one-off `--coordinator llm` run of v3, then v4,
    # configured llm, whose one run failed before its first step (no API key). Neither is
    # a migration; the script's virtual file reads and the model's files.read both do not
    # count as tool calls.
    s.run(
        ("pr_merged", V3, "llm"),
        at=2050,
        took=2,
        trigger=pull_request(107, "d9"),
        calls=[("files.read", {"path": "settings.json"}), status(107)],
        used=usage(1_000, 100, 30_000, 2_000, calls=2),
    )
    store.keep_version(V4, "pr_merged", {"spec": {"coordinator": "llm", "model": SONNET}})
    s.run(("pr_merged", V4, "llm"), at=2060, took=0.1, status="failed")
    report = ledger_report(store, default_prices(), "pr_merged", 0.0, 0.0, 1000)

    [migration] = report["migrations"]
    before, after = migration["before"], migration["after"]
    assert (before["coordinator"], before["version"]) == ("llm", V2)
    assert (after["coordinator"], after["version"]) == ("script", V3)
    per_run = {c["figure"]: c for c in migration["per_run"]}
    assert (per_run["tokens"]["before"], per_run["tokens"]["after"]) == (155_000, 4_000)
    assert per_run["tokens"]["change_pct"] == pytest.approx(-97.419355, abs=1e-6)
    assert per_run["cost"]["before"] == pytest.approx(0.17)
    assert per_run["cost"]["change_pct"] == pytest.approx(-96.078431, abs=1e-6)

    groups = {(g["coordinator"], g["version"]): g for g in report["groups"]}
    one_off, failed = groups[("llm", V3)], groups[("llm", V4)]
    assert (one_off["configured"], failed["configured"]) == (False, True)
    assert groups[("script", V3)]["configured"] is True
    # IN is every input token: uncached + cache read + cache write.
    assert one_off["per_run"]["all_input_tokens"] == 33_000
    assert one_off["per_run"]["tool_calls"] == 1.0  # files.read left out, as for a script
    assert one_off["plans"]["distinct_plans"] == 1


def test_plans_count_tool_sequences_not_argument_values(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite3")
    s = Seeder(store)
    for number in (101, 102, 103):
        s.run(
            SCRIPT3,
            at=number,
            took=1,
            trigger=pull_request(number, f"d{number}"),
            calls=[status(number), react(str(number))],
        )
    s.run(SCRIPT3, at=200, took=1, trigger=pull_request(104, "d104"), calls=[status(104)])
    [group] = ledger_of(store).groups
    assert [(shape.runs, shape.distinct_plans) for shape in group.shapes] == [(4, 2)]


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    values = [float(n) for n in range(1, 21)]  # 1..20
    assert (percentile(values, 50), percentile(values, 95)) == (10.0, 19.0)
    assert percentile(values[:19], 95) == 19.0  # ceil(18.05) = 19th


def test_triggers_alike_but_for_their_values_share_a_shape() -> None:
    assert trigger_shape(pull_request(1, "a")) == trigger_shape(pull_request(2, "b"))
    assert trigger_shape({"a": [1, 2.5, "x", None, True, 3]}) == {
        "a": ["boolean", "integer", "null", "number", "string"]
    }
    assert trigger_shape({"labels": ["a"]}) == trigger_shape({"labels": ["a", "b", "c"]})
    assert trigger_shape({"n": 1}) != trigger_shape({"n": "1"})
    assert trigger_shape(None) == "null"


def test_a_plan_is_the_runs_own_calls_without_file_reads(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite3")
    ids = seed(store)
    record = store.get(ids["v1a"])
    assert record is not None
    assert tool_plan(record) == (
        ("github.pr_status", '{"url":"https://github.com/o/r/pull/101"}'),
        ("slack.add_reaction", '{"channel":"eng","name":"merged","ts":"1"}'),
    )


def test_prices_come_from_tandem_yaml_over_the_defaults(tmp_path: Path) -> None:
    table = default_prices()
    assert table.price("claude-haiku-4-5-20251001") == table.price(HAIKU)  # a dated snapshot
    assert table.price("claude-haiku-4") is None  # never guessed from a likeness
    (tmp_path / "tandem.yaml").write_text(
        textwrap.dedent(
            """
            prices:
              claude-sonnet-5-5: {input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}
              acme-large: {input: 1.5, output: 6.0, cache_write: 0, cache_read: 0}
            """
        )
    )
    prices = load_prices(tmp_path)
    sonnet = prices.price(SONNET)
    assert sonnet is not None and sonnet.cost(usage(1_000_000, 1_000_000)) == 18.0
    assert prices.price("acme-large") is not None and prices.price(HAIKU) is not None
    assert load_prices(tmp_path / "elsewhere").price(SONNET) == table.price(SONNET)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{input: 1, output: 2, cache_write: 3}", "prices.m1: missing cache_read"),
        ("{input: 1, output: 2, cache_write: 3, cache_read: 0, batch: 1}", "unknown batch"),
        (
            "{input: -1, output: 2, cache_write: 3, cache_read: 0}",
            "prices.m1.input: expected a price >= 0",
        ),
        (
            "{input: cheap, output: 2, cache_write: 3, cache_read: 0}",
            "prices.m1.input: expected a number",
        ),
        ("3.0", "prices.m1: expected {input, output, cache_write, cache_read}"),
    ],
)
def test_a_bad_price_names_the_file_and_the_model(tmp_path: Path, entry: str, message: str) -> None:
    (tmp_path / "tandem.yaml").write_text(f"prices:\n  m1: {entry}\n")
    with pytest.raises(DefinitionError) as raised:
        load_prices(tmp_path)
    assert str(tmp_path / "tandem.yaml") in str(raised.value)
    assert message in str(raised.value)


def test_tandem_stats_through_an_embedded_host(project: Project) -> None:
    store = RunStore(project.config.database)
    seed(store)
    store.close()

    result = tandem(project, "stats", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    groups = {(g["workflow"], g["coordinator"], g["version"]): g for g in report["groups"]}
    v1 = groups[("pr_merged", "llm", V1)]
    assert (v1["runs"], v1["succeeded"], v1["failed"], v1["flagged"]) == (4, 3, 1, 1)
    assert v1["duration_s"] == {"p50": 4.0, "p95": 8.0}
    assert (v1["tool_calls"], v1["input_tokens"], v1["tokens"]) == (7, 400_000, 1_320_000)
    # Over Control the version's model comes from the events: v1's Sonnet request names it.
    assert v1["model"] == SONNET and round(v1["cost_usd"], 2) == 1.50
    assert v1["plans"]["distinct_plans"] == 2 and v1["plans"]["trigger_shapes"] == 2
    # v2's runs hold no model events: the daemon prices them by the kept version's model.
    v2 = groups[("pr_merged", "llm", V2)]
    assert (round(v2["cost_usd"], 2), v2["unpriced_models"], v2["model_unknown"]) == (
        0.34,
        [],
        False,
    )
    assert groups[("pr_merged", "script", V2)]["shadows"] == {
        "runs": 2,
        "agreed": 1,
        "agreement": 0.5,
    }
    v3 = groups[("pr_merged", "script", V3)]
    assert v3["runs"] == 3 and round(v3["cost_usd"], 2) == 0.02
    [migration] = report["migrations"]
    assert (migration["before"]["version"], migration["after"]["version"]) == (V2, V3)
    change = {c["figure"]: c["change_pct"] for c in migration["per_run"]}
    assert change["tokens"] == pytest.approx(-97.419355, abs=1e-6)
    assert change["cost"] == pytest.approx(-96.078431, abs=1e-6)
    assert report["prices"][SONNET] == {
        "input": 2.0,
        "output": 10.0,
        "cache_write": 2.5,
        "cache_read": 0.2,
    }

    since = datetime.fromtimestamp(T0 + 500).isoformat()
    later = json.loads(tandem(project, "stats", "pr_merged", "--since", since, "--json").stdout)
    assert {(g["coordinator"], g["version"]) for g in later["groups"]} == {
        ("llm", V2),
        ("script", V2),
        ("script", V3),
    }

    text = tandem(project, "stats")
    assert text.returncode == 0, text.stderr
    assert "only live runs and MCP sessions (coordinator mcp) count" in text.stdout
    row = next(line for line in text.stdout.splitlines() if V1 in line)
    assert row.split()[:7] == ["pr_merged", "llm", V1, "4", "3", "1", "1"]
    assert "$1.50" in row and "2/2" in row
    assert (
        f"migration pr_merged: llm {V2} (2 runs) -> script {V3} (3 runs), per run:" in text.stdout
    )
    assert "-97.4%" in text.stdout


def test_excluded_runs_and_their_shadows_are_not_counted(project: Project) -> None:
    store = RunStore(project.config.database)
    ids = seed(store)
    store.exclude(ids["v1a"], {"reason": "an experiment", "at": T0})
    store.exclude(ids["v2b"], {"reason": "a typo", "at": T0})  # and its shadow goes with it
    store.close()

    report = json.loads(tandem(project, "stats", "pr_merged", "--json").stdout)
    groups = {(g["coordinator"], g["version"]): g for g in report["groups"]}
    v1 = groups[("llm", V1)]
    assert (v1["runs"], v1["succeeded"], v1["failed"], v1["flagged"]) == (3, 2, 1, 0)
    assert groups[("llm", V2)]["runs"] == 1
    assert groups[("script", V2)]["shadows"] == {"runs": 1, "agreed": 1, "agreement": 1.0}
    shadow = json.loads(tandem(project, "shadow", "pr_merged", "--json").stdout)
    assert (shadow["agreed"], shadow["differed"]) == (1, 0)
    assert ids["v2b"] not in {row["primary"] for row in shadow["shadows"]}


class ListingHost:
    """ListRuns as the Control servicer answers it: newest first, `until` inclusive."""

    def __init__(self, created: list[float]) -> None:
        self.records = [
            RunRecord(f"r{i}", "w", "v", "script", None, "succeeded", created_at=at)
            for i, at in enumerate(created)
        ]

    def runs(
        self, workflow: str, status: str, limit: int, *, since: float, until: float, **_: Any
    ) -> list[RunRecord]:
        bound = until or float("inf")
        found = [r for r in self.records if since <= r.created_at <= bound]
        return sorted(found, key=lambda r: -r.created_at)[:limit]
