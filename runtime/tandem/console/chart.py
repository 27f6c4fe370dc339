"""The ledger page's chart: tokens (or cost) per run over time, one line per workflow and
coordinator, drawn as SVG on the server (no script), so a migration from one coordinator
to another shows as one line ending where the next begins. Only the runs the ledger
counts (live runs and MCP sessions) are drawn; a run whose cost is unknown (a model
without a price) has no point on the cost chart."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from tandem.ledger.figures import COUNTED_MODES, TOKEN_KEYS, run_cost
from tandem.ledger.prices import PriceTable
from tandem.store import RunRecord

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 34, 46  # margins: axis labels left, legend right
COLOURS = ("#0b4f9c", "#c2410c", "#15803d", "#7a5af8", "#b91c1c", "#0e7490")


@dataclass(frozen=True)
class Point:
    at: float  # the run's creation time
    run_id: str
    tokens: int
    cost: float | None  # USD; None: unknown


@dataclass(frozen=True)
class Series:
    label: str  # "workflow · coordinator"
    points: tuple[Point, ...]


def run_series(
    runs: Iterable[RunRecord], models: Mapping[str, str], prices: PriceTable
) -> list[Series]:
    """Per workflow and coordinator, the counted runs in time order with their tokens and
    cost (priced as the ledger prices them)."""
    grouped: dict[tuple[str, str], list[Point]] = defaultdict(list)
    for run in runs:
        if run.mode not in COUNTED_MODES:
            continue
        usd, unpriced = run_cost(run, models.get(run.workflow_version), prices)
        tokens = sum(int(run.usage.get(key, 0)) for key in TOKEN_KEYS)
        point = Point(run.created_at, run.id, tokens, None if unpriced else usd)
        grouped[(run.workflow, run.coordinator)].append(point)
    return [
        Series(f"{workflow} · {coordinator}", tuple(sorted(points, key=lambda p: p.at)))
        for (workflow, coordinator), points in sorted(grouped.items())
    ]


@dataclass(frozen=True)
class Metric:
    name: str  # "tokens" or "cost"
    axis: str  # the y axis's title
    value: Callable[[Point], float | None]
    shown: Callable[[float], str]


TOKENS = Metric("tokens", "tokens per run", lambda p: p.tokens, lambda v: f"{v:,.0f}")
COST = Metric("cost", "cost per run (USD)", lambda p: p.cost, lambda v: f"${v:.4f}")


def svg_chart(series: list[Series], metric: Metric, chart_id: str) -> Markup:
    """An accessible SVG: a title, a text summary (`desc`), labelled axes, one polyline per
    series with a point per run (each with its own title), and a legend."""
    plotted = [
        (s, [(p, v) for p in s.points if (v := metric.value(p)) is not None]) for s in series
    ]
    plotted = [(s, points) for s, points in plotted if points]
    title = f"{metric.axis.capitalize()} over time, per workflow and coordinator"
    summary = "; ".join(_summary(s, points, metric) for s, points in plotted) or "No runs."
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' width="100%" style="max-width:{WIDTH}px" aria-labelledby="{chart_id}-title'
        f' {chart_id}-desc" id="{chart_id}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(summary)}</desc>',
    ]
    times = [p.at for _, points in plotted for p, _ in points]
    values = [v for _, points in plotted for _, v in points]
    start, end = (min(times), max(times)) if times else (0.0, 0.0)
    top = max(values, default=0.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: float) -> float:
        return LEFT + (plot_w / 2 if end == start else (at - start) / (end - start) * plot_w)

    def y(value: float) -> float:
        return TOP + plot_h - (value / top * plot_h if top else 0.0)

    parts += _axes(metric, top, start, end)
    for n, (s, points) in enumerate(plotted):
        colour = COLOURS[n % len(COLOURS)]
        coords = " ".join(f"{x(p.at):.1f},{y(v):.1f}" for p, v in points)
        parts.append(f'<g class="series" data-series="{escape(s.label)}">')
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        for p, v in points:
            tip = f"{s.label}, run {p.run_id}, {_when(p.at)}: {metric.shown(v)}"
            parts.append(
                f'<circle cx="{x(p.at):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        legend_y = TOP + 6 + n * 18
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 14}" y="{legend_y - 8}" width="10" height="10"'
            f' fill="{colour}"/><text x="{WIDTH - RIGHT + 30}" y="{legend_y + 1}"'
            f' font-size="12">{escape(s.label)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it is escaped above


def _axes(metric: Metric, top: float, start: float, end: float) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [
        f'<g class="axes" font-size="11" fill="#444">'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        at = bottom - fraction * (bottom - TOP)
        label = metric.shown(top * fraction)
        parts.append(f'<text x="{LEFT - 6}" y="{at + 4:.1f}" text-anchor="end">{label}</text>')
    if end:
        parts.append(f'<text x="{LEFT}" y="{bottom + 16}">{_when(start)}</text>')
        parts.append(f'<text x="{right}" y="{bottom + 16}" text-anchor="end">{_when(end)}</text>')
    middle = (LEFT + right) / 2
    parts.append(
        f'<text x="{middle}" y="{HEIGHT - 6}" text-anchor="middle">run created (time)</text>'
    )
    parts.append(
        f'<text transform="translate(14 {(TOP + bottom) / 2}) rotate(-90)"'
        f' text-anchor="middle">{escape(metric.axis)}</text></g>'
    )
    return parts


def _summary(series: Series, points: list[tuple[Point, float]], metric: Metric) -> str:
    mean = sum(v for _, v in points) / len(points)
    runs = f"{len(points)} run{'s' if len(points) != 1 else ''}"
    span = f"{_when(points[0][0].at)} to {_when(points[-1][0].at)}"
    return f"{series.label}: {runs} from {span}, mean {metric.shown(mean)} {metric.axis}"


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))
