"""The Usage screen's chart: one metric over time, one line per group (the busiest few), from the usage rollups.

Drawn with Plotext through textual-plotext. Without that package the chart falls back to one sparkline per group,
so the console still opens (and says so in the chart's title).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

from console.format import utc_time
from gateway_core.contracts.history_views import UsagePoint, UsageView

try:  # an optional dependency: the fallback below keeps the console working without it
    from textual_plotext import PlotextPlot

    HAVE_PLOTEXT = True
except ImportError:  # pragma: no cover - exercised only where the package is absent
    HAVE_PLOTEXT = False

Metric = Literal["requests", "tokens", "errors", "latency"]
METRICS: tuple[Metric, ...] = ("requests", "tokens", "errors", "latency")
METRIC_TITLES: dict[Metric, str] = {
    "requests": "requests",
    "tokens": "tokens (prompt + completion)",
    "errors": "errors",
    "latency": "latency p50 (s)",
}
LINES_SHOWN = 6  # more groups than this become unreadable as lines; the table below lists them all


def metric_value(point: UsagePoint, metric: Metric) -> float | None:
    """One bucket's value for the metric; None where there is none (latency of an empty bucket)."""
    if metric == "requests":
        return float(point["requests"])
    if metric == "tokens":
        return float(point["prompt_tokens"] + point["completion_tokens"])
    if metric == "errors":
        return float(point["errors"])
    return point["latency_p50_s"]


def bucket_starts(view: UsageView) -> list[float]:
    """Every bucket in the range, so a quiet hour is a zero on the chart rather than a gap the line jumps."""
    step = 3600.0 if view["bucket"] == "hour" else 86400.0
    first = view["since"] - view["since"] % step
    return [first + step * index for index in range(max(1, int((view["until"] - first) // step) + 1))]


def series_values(view: UsageView, metric: Metric) -> list[tuple[str, list[float]]]:
    """(group, one value per bucket) for the busiest groups; a bucket with no rollup counts 0."""
    starts = bucket_starts(view)
    lines: list[tuple[str, list[float]]] = []
    for series in view["series"][:LINES_SHOWN]:
        by_start = {point["bucket_start"]: metric_value(point, metric) for point in series["points"]}
        lines.append((series["group"], [by_start.get(start) or 0.0 for start in starts]))
    return lines


def tick_labels(view: UsageView, ticks: int = 5) -> tuple[list[float], list[str]]:
    starts = bucket_starts(view)
    step = max(1, (len(starts) - 1) // max(1, ticks - 1))
    positions = [float(index) for index in range(0, len(starts), step)]
    hourly = view["bucket"] == "hour"
    labels = [
        utc_time(starts[int(i)], seconds=False)[5:16] if hourly else utc_time(starts[int(i)])[5:10] for i in positions
    ]
    return positions, labels


class UsageChart(Widget):
    DEFAULT_CSS = """
    UsageChart {
        height: 1fr;
        min-height: 8;
    }
    UsageChart .spark-row { height: 1; }
    UsageChart .spark-row > Label { width: 16; }
    UsageChart .spark-row > Sparkline { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plotted = False
        self.lines: list[tuple[str, list[float]]] = []  # what the chart shows now, for tests

    def compose(self) -> ComposeResult:
        if HAVE_PLOTEXT:
            yield PlotextPlot(id="usage-plot")
        else:
            yield Static("usage chart (install textual-plotext for a plot)", id="usage-plot-note")
            yield Vertical(id="usage-sparks")

    def show(self, view: UsageView, metric: Metric) -> None:
        self.lines = series_values(view, metric)
        if HAVE_PLOTEXT:
            self._plot(view, metric)
        else:
            self._sparks()

    def _plot(self, view: UsageView, metric: Metric) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{METRIC_TITLES[metric]} per {view['bucket']} by {view['by']}")
        for group, values in self.lines:
            plt.plot([float(index) for index in range(len(values))], values, label=group[:20], marker="braille")
        positions, labels = tick_labels(view)
        plt.xticks(positions, labels)
        if not self.lines:
            plt.title(f"{METRIC_TITLES[metric]}: no requests in this range")
        plot.refresh()

    def _sparks(self) -> None:
        sparks = self.query_one("#usage-sparks", Vertical)
        sparks.remove_children()
        sparks.mount_all(_spark_row(group, values) for group, values in self.lines)


def _spark_row(group: str, values: Sequence[float]) -> Horizontal:
    return Horizontal(Label(group[:15]), Sparkline(list(values)), classes="spark-row")
