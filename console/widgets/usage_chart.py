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
# A chart 120 cells wide cannot show 2,160 hourly points (90 days), and Plotext's cost grows with them: past this
# many, neighbouring buckets are merged (counts summed, latencies averaged over the buckets that had any).
MAX_POINTS = 360


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


def points_per_step(view: UsageView) -> int:
    return -(-len(bucket_starts(view)) // MAX_POINTS)  # ceiling division


def series_values(view: UsageView, metric: Metric) -> list[tuple[str, list[float]]]:
    """(group, one value per step of the x axis) for the busiest groups; a bucket with no rollup counts 0."""
    starts = bucket_starts(view)
    step = points_per_step(view)
    lines: list[tuple[str, list[float]]] = []
    for series in view["series"][:LINES_SHOWN]:
        by_start = {point["bucket_start"]: metric_value(point, metric) for point in series["points"]}
        values = [by_start.get(start) for start in starts]
        lines.append((series["group"], [_merged(values[i : i + step], metric) for i in range(0, len(values), step)]))
    return lines


def _merged(values: list[float | None], metric: Metric) -> float:
    present = [value for value in values if value is not None]
    if not present:
        return 0.0
    return sum(present) / len(present) if metric == "latency" else sum(present)


def tick_labels(view: UsageView, ticks: int = 5) -> tuple[list[float], list[str]]:
    starts = bucket_starts(view)[:: points_per_step(view)]
    every = max(1, (len(starts) - 1) // max(1, ticks - 1))
    indexes = range(0, len(starts), every)
    # "11-03 14:00" per hour, "11-03" per day: the year is in the screen's title.
    width = 16 if view["bucket"] == "hour" else 10
    return [float(i) for i in indexes], [utc_time(starts[i], seconds=False)[5:width] for i in indexes]


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
