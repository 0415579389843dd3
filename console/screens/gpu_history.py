"""GPU and provider history: an hour kept by corral-core, drawn over the last 1, 5, 15 or 60 minutes.

The screen asks GET /gpus/history (or /providers/history) once a bucket, for as many points as the charts are
wide enough to show; corral-core does the downsampling. Opened from the dashboard's GPUs (h) and Providers (H).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from console.screens.base import ConsoleHost
from console.widgets.gpu_history import Chart, HistoryChart, gpu_charts, provider_charts
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError
from gateway_core.contracts.views import GpuHistoryView, HistoryWindow, ProviderHistoryView

WINDOWS_MIN: tuple[int, ...] = (1, 5, 15, 60)
MAX_POINTS = 120  # a chart half of a 120-column screen is 60 cells, 120 braille dots wide
MIN_REFRESH_S = 1.0  # the sampler's default interval: nothing new comes faster


def points_for(minutes: int) -> int:
    return min(MAX_POINTS, minutes * 60)  # at most one point a second, the sampling rate


class HistoryScreen(Screen[None]):
    """The window keys and the refresh; subclasses say what to ask and how to chart it."""

    DEFAULT_CSS = """
    HistoryScreen { layout: vertical; }
    HistoryScreen #history-title { height: 1; padding: 0 1; text-style: bold; }
    HistoryScreen #history-note { height: auto; padding: 0 1; color: $text-muted; }
    HistoryScreen #history-charts { grid-size: 2; grid-gutter: 0 1; height: 1fr; }
    HistoryScreen.-single-column #history-charts { grid-size: 1; }
    """
    CHARTS = 4
    WHAT = "history"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="charts.back", tooltip="Back to the dashboard"),
        Binding("1", "window(1)", "1 min", id="charts.window_1", tooltip="Show the last minute"),
        Binding("2", "window(5)", "5 min", id="charts.window_5", tooltip="Show the last 5 minutes"),
        Binding("3", "window(15)", "15 min", id="charts.window_15", tooltip="Show the last 15 minutes"),
        Binding("4", "window(60)", "60 min", id="charts.window_60", tooltip="Show the last hour"),
        Binding("w", "next_window", "Next window", id="charts.next_window", tooltip="Cycle 1, 5, 15, 60 minutes"),
    ]

    @dataclass
    class Loaded(Message):
        charts: list[Chart]
        window: HistoryWindow
        note: str

    @dataclass
    class Failed(Message):
        reason: str

    def __init__(self, minutes: int = 15) -> None:
        super().__init__()
        self.minutes = minutes
        self._timer: Timer | None = None
        self.loads = 0  # answers drawn, for tests

    @property
    def host(self) -> ConsoleHost:
        return self.app  # type: ignore[return-value]  # the app is a ConsoleHost (CorralApp, or a harness)

    def compose(self) -> ComposeResult:
        yield Static("", id="history-title", markup=False)
        yield Static("loading…", id="history-note", markup=False)
        with Grid(id="history-charts"):
            for index in range(self.CHARTS):
                yield HistoryChart(id=f"history-chart-{index}")
        yield KeyHints()

    def on_mount(self) -> None:
        self._title()
        self._reschedule()

    def _title(self) -> None:
        self.query_one("#history-title", Static).update(f"{self.WHAT} · last {self.minutes} min")

    def _reschedule(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        step_s = self.minutes * 60 / points_for(self.minutes)
        self._timer = self.set_interval(max(MIN_REFRESH_S, step_s), self.load)
        self.load()

    @work(exclusive=True, group="history")
    async def load(self) -> None:
        minutes, points = self.minutes, points_for(self.minutes)
        try:
            charts, window, note = await self.fetch(minutes, points)
        except CorralError as error:
            self.post_message(self.Failed(f"{error.message}; it tries again in a moment"))
            return
        if minutes == self.minutes:  # a window switched meanwhile asks again
            self.post_message(self.Loaded(charts, window, note))

    async def fetch(self, minutes: int, points: int) -> tuple[list[Chart], HistoryWindow, str]:
        raise NotImplementedError

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.query_one("#history-note", Static).update(f"cannot read the history: {message.reason}")

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.query_one("#history-note", Static).update(message.note)
        for index, chart in enumerate(message.charts[: self.CHARTS]):
            self.query_one(f"#history-chart-{index}", HistoryChart).show(chart, message.window)
        self.loads += 1

    def action_window(self, minutes: int) -> None:
        if minutes != self.minutes:
            self.minutes = minutes
            self._title()
            self._reschedule()

    def action_next_window(self) -> None:
        self.action_window(WINDOWS_MIN[(WINDOWS_MIN.index(self.minutes) + 1) % len(WINDOWS_MIN)])

    def action_back(self) -> None:
        self.dismiss()


class GpuHistoryScreen(HistoryScreen):
    """Utilisation, memory, power and temperature, one line per GPU."""

    WHAT = "GPU history"

    async def fetch(self, minutes: int, points: int) -> tuple[list[Chart], HistoryWindow, str]:
        view: GpuHistoryView = await self.host.client.gpu_history(minutes, points)
        if not view["devices"]:
            note = "no GPU sampled: corral-core keeps GPU history only where NVML answers (see the GPUs panel)"
        else:
            kinds = Counter(d["name"] for d in view["devices"])  # "8 x NVIDIA H100": one line however many
            names = ", ".join(f"{count} x {name}" for name, count in kinds.items())
            note = f"{names} · sampled every {view['interval_s']:g} s · {_step(view)} a point"
        return gpu_charts(view), view, note


class ProviderHistoryScreen(HistoryScreen):
    """Requests and completion tokens per second, one line per provider (the busiest 8)."""

    CHARTS = 2
    WHAT = "Provider history"

    def on_mount(self) -> None:
        self.add_class("-single-column")
        super().on_mount()

    async def fetch(self, minutes: int, points: int) -> tuple[list[Chart], HistoryWindow, str]:
        view: ProviderHistoryView = await self.host.client.provider_history(minutes, points)
        count = len(view["providers"])
        note = f"{count} provider(s) · {_step(view)} a point" if count else "no provider configured yet"
        return provider_charts(view), view, note


def _step(window: HistoryWindow) -> str:
    return f"{window['step_s']:g} s"
