"""History charts: one metric over the window, one braille line per GPU or provider (Plotext through
textual-plotext). corral-core answers bucket means (gateway_core/fleet/gpu_history.py); this only draws them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual_plotext import PlotextPlot

from gateway_core.contracts.views import GpuHistoryView, GpuSeriesView, HistoryWindow, ProviderHistoryView

LINES_SHOWN = 8  # nvitop's busiest boxes have 8 GPUs; more lines than that cannot be told apart


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    values: list[float | None]  # one per bucket, oldest first


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    lines: list[Line]
    ceiling: float | None = None  # a fixed top (100 for percents), else the data's


def _memory_percent(series: GpuSeriesView) -> list[float | None]:
    total = series["memory_total_bytes"]
    if not total:
        return [None] * len(series["memory_used_bytes"])
    return [None if used is None else round(used / total * 100, 1) for used in series["memory_used_bytes"]]


GPU_METRICS: tuple[tuple[str, str, float | None, Callable[[GpuSeriesView], list[float | None]]], ...] = (
    ("utilisation", "%", 100.0, lambda s: s["utilization_percent"]),
    ("memory used", "%", 100.0, _memory_percent),
    ("power draw", "W", None, lambda s: s["power_draw_watts"]),
    ("temperature", "°C", None, lambda s: s["temperature_c"]),
)


def gpu_charts(view: GpuHistoryView) -> list[Chart]:
    devices = view["devices"][:LINES_SHOWN]
    return [
        Chart(title, unit, [Line(f"GPU{d['index']}", pick(d)) for d in devices], ceiling)
        for title, unit, ceiling, pick in GPU_METRICS
    ]


def provider_charts(view: ProviderHistoryView) -> list[Chart]:
    # The busiest first: a gateway with many providers shows the ones carrying traffic.
    ranked = sorted(view["providers"], key=lambda p: -sum(v or 0.0 for v in p["requests_per_s"]))[:LINES_SHOWN]
    return [
        Chart("requests", "req/s", [Line(p["name"][:24], p["requests_per_s"]) for p in ranked]),
        Chart("completion tokens", "tok/s", [Line(p["name"][:24], p["tokens_per_s"]) for p in ranked]),
    ]


def latest_value(values: Sequence[float | None]) -> float | None:
    return next((value for value in reversed(values) if value is not None), None)


def minutes_ago(window: HistoryWindow) -> list[float]:
    """Each bucket's middle, in minutes before the window's end (negative, so time runs left to right)."""
    step_min = window["step_s"] / 60
    return [round(-window["minutes"] + step_min * (index + 0.5), 3) for index in range(window["points"])]


class HistoryChart(PlotextPlot):
    """One Chart, redrawn when shown another."""

    DEFAULT_CSS = """
    HistoryChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chart: Chart | None = None  # what it shows, for tests

    def show(self, chart: Chart, window: HistoryWindow) -> None:
        self.chart = chart
        xs = minutes_ago(window)
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plotted = 0
        for line in chart.lines:
            points = [(x, y) for x, y in zip(xs, line.values, strict=True) if y is not None]
            if points:  # the legend says each line's latest value, as nvitop's meters do
                label = f"{line.label} {_short(latest_value(line.values))}{chart.unit}"
                plt.plot([x for x, _ in points], [y for _, y in points], label=label, marker="braille")
                plotted += 1
        plt.title(f"{chart.title} ({chart.unit})" + ("" if plotted else ": nothing sampled in this window yet"))
        plt.xlim(-window["minutes"], 0)
        plt.ylim(0, chart.ceiling if chart.ceiling is not None else None)
        plt.xlabel("minutes ago")
        self.refresh()


def _short(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
