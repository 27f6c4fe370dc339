"""The ledger's chart (tandem.console.chart): points scaled into the plot, one line per
workflow and coordinator, unknown costs left out, and every text escaped."""

from __future__ import annotations

import re

from tandem.console.chart import COST, TOKENS, run_series, svg_chart
from tandem.ledger.prices import default_prices
from tandem.store import RunRecord

T0 = 1_700_000_000.0
WORKFLOW = "pr<merged>&"


def _run(
    run_id: str, coordinator: str, version: str, at: float, tokens: int, mode: str = "live"
) -> RunRecord:
    usage = {"input_tokens": tokens, "output_tokens": 0}
    return RunRecord(
        run_id,
        WORKFLOW,
        version,
        coordinator,
        None,
        "succeeded",
        created_at=T0 + at,
        usage=usage,
        mode=mode,
    )


def _points(svg: str, label: str) -> str:
    group = svg.split(f'data-series="{label}"')[1]
    found = re.search(r'<polyline [^>]*points="([^"]*)"', group)
    assert found is not None
    return found.group(1)


def test_the_chart_scales_points_per_coordinator_and_escapes_its_labels() -> None:
    runs = [
        _run("r1", "llm", "v1", 0, 1000),
        _run("r5", "llm", "v9", 50, 1500),  # a model without a price: no cost
        _run("r2", "llm", "v1", 100, 3000),
        _run("r3", "script", "v2", 200, 0),
        _run("r4", "script", "v2", 150, 0, mode="shadow"),  # not counted: not drawn
    ]
    models = {"v1": "claude-sonnet-4-6", "v9": "acme-large"}
    series = run_series(runs, models, default_prices())
    assert [s.label for s in series] == [f"{WORKFLOW} · llm", f"{WORKFLOW} · script"]
    tokens = str(svg_chart(series, TOKENS, "t"))
    llm, script = "pr&lt;merged&gt;&amp; · llm", "pr&lt;merged&gt;&amp; · script"
    # x: 70 + (at / 200) * 480; y: 34 + 180 - tokens / 3000 * 180
    assert _points(tokens, llm) == "70.0,154.0 190.0,124.0 310.0,34.0"
    assert _points(tokens, script) == "550.0,214.0"
    assert "r4" not in tokens and WORKFLOW not in tokens
    assert 'role="img" ' in tokens and 'aria-labelledby="t-title t-desc"' in tokens
    assert '<title id="t-title">Tokens per run over time' in tokens
    assert f"{llm}: 3 runs" in tokens and "mean 1,833 tokens per run" in tokens
    assert ">3,000</text>" in tokens and ">tokens per run</text>" in tokens
    cost = str(svg_chart(series, COST, "c"))
    # 1000 and 3000 input tokens at $3 per million: $0.003 and $0.009, r5 left out
    assert _points(cost, llm) == "70.0,154.0 310.0,34.0"
    assert ">$0.0090</text>" in cost and "r5" not in cost
