"""Usage over time from the archive's hourly rollups: a chart of one metric per group, and every group's totals.

The keys cycle the metric (requests, tokens, errors, latency), the grouping (key, model, provider), the range
(24h, 7d, 30d, 90d) and the bucket (hour, day). GET /usage reads only rollups, so 90 days is as quick as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Static

from console.format import count, energy, gpu_time, latency, rate, tokens, utc_time
from console.live_state import LiveState
from console.screens.base import LiveScreen
from console.widgets.archive_alert import ArchiveAlert
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import LiveTable
from console.widgets.usage_chart import METRICS, Metric, UsageChart
from gateway_core.client import CorralError
from gateway_core.contracts.history_views import UsageBucket, UsageDimension, UsageSeries, UsageView

USAGE_CSS = str(Path(__file__).parent.parent / "styles" / "usage.tcss")
GROUPINGS: tuple[UsageDimension, ...] = ("key", "model", "provider")
RANGES = ("24h", "7d", "30d", "90d")
BUCKETS: tuple[UsageBucket, ...] = ("hour", "day")
# The bucket a range moves to: 24 h per day is one point, and 90 days per hour is 2,160 per group (megabytes from
# the daemon); b still picks either.
RANGE_BUCKETS: dict[str, UsageBucket] = {"24h": "hour", "90d": "day"}
T = TypeVar("T")


def following(options: tuple[T, ...], current: T) -> T:
    return options[(options.index(current) + 1) % len(options)]


class UsageTable(LiveTable):
    SORTED = False  # busiest first, as the daemon orders them
    COLUMNS = (
        ("group", "group", 16),
        ("requests", "requests", 8),
        ("errors", "errors", 6),
        ("tokens", "tokens", 11),
        ("p50", "p50", 6),
        ("p95", "p95", 6),
        ("ttft", "ttft p50", 8),
        ("tps", "tok/s", 6),
        ("gpu", "GPU time", 11),
        ("energy", "energy", 9),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(lambda: 0.0, id=id)

    def show(self, series: list[UsageSeries]) -> None:
        rows = []
        for one in series:
            total = one["total"]
            errors = self.level(count(total["errors"]), "bad" if total["errors"] else "muted")
            rows.append(
                (
                    one["group_id"] or one["group"],
                    (
                        one["group"],
                        count(total["requests"]),
                        errors,
                        tokens(total),
                        latency(total["latency_p50_s"]),
                        latency(total["latency_p95_s"]),
                        latency(total["ttft_p50_s"]),
                        rate(total["tokens_per_s"], "").strip(),
                        gpu_time(total["gpu_seconds"]),
                        energy(total["energy_joules"]),
                    ),
                )
            )
        self.sync([])  # a new answer's order (busiest first) replaces the last one's
        self.sync(rows)


class UsageScreen(LiveScreen):
    CSS_PATH: ClassVar[str] = USAGE_CSS
    AUTO_FOCUS = "#usage-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "cycle_metric", "Metric", id="usage.metric", tooltip="Requests, tokens, errors or latency"),
        Binding(
            "g", "cycle_grouping", "Group by", id="usage.group", tooltip="Per key, model or provider", priority=True
        ),
        Binding("t", "cycle_range", "Range", id="usage.range", tooltip="The last 24h, 7d, 30d or 90d"),
        Binding("b", "cycle_bucket", "Bucket", id="usage.bucket", tooltip="One point per hour or per day"),
        Binding("ctrl+r", "refresh", "Refresh", id="usage.refresh", tooltip="Ask corral-core again"),
    ]

    @dataclass
    class Loaded(Message):
        asked: tuple[UsageDimension, str, UsageBucket]
        view: UsageView

    @dataclass
    class Failed(Message):
        reason: str

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.metric: Metric = "requests"
        self.grouping: UsageDimension = "key"
        self.range = "7d"
        self.bucket: UsageBucket = "day"
        self.view: UsageView | None = None
        self.shown_for: tuple[UsageDimension, str, UsageBucket] | None = None  # what `view` answers
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="usage-bar"):
            yield Static("Usage", id="usage-title", markup=False)
            yield ArchiveAlert(id="archive-alert")
        yield UsageChart(id="usage-chart")
        yield UsageTable(id="usage-table")
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one(ArchiveAlert).show(self.host.live.archive)
        self.reload()

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        if "archive" in changed:
            self.query_one(ArchiveAlert).show(live.archive)

    @property
    def asked(self) -> tuple[UsageDimension, str, UsageBucket]:
        return self.grouping, self.range, self.bucket

    def reload(self) -> None:
        self._show_title(loading=True)
        self.load(self.asked)

    @work(exclusive=True, group="usage")
    async def load(self, asked: tuple[UsageDimension, str, UsageBucket]) -> None:
        by, since, bucket = asked
        try:
            view = await self.host.client.usage(by=by, since=since, bucket=bucket)
        except CorralError as error:
            self.post_message(self.Failed(error.message))
            return
        self.post_message(self.Loaded(asked, view))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.asked != self.asked:
            return  # the operator has since asked for another view
        self.view, self.problem, self.shown_for = message.view, None, message.asked
        self._draw()

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.problem = f"usage unavailable: {message.reason}"
        self._show_title()

    def _draw(self) -> None:
        if self.view is None:
            return
        self.query_one(UsageChart).show(self.view, self.metric)
        self.query_one(UsageTable).show(self.view["series"])
        self._show_title()

    def _show_title(self, *, loading: bool = False) -> None:
        parts = [f"Usage · {self.metric} by {self.grouping} · last {self.range} per {self.bucket}"]
        if self.view is not None:
            parts.append(
                f"{utc_time(self.view['since'], seconds=False)} to {utc_time(self.view['until'], seconds=False)} UTC"
            )
            parts.append(f"{len(self.view['series'])} groups")
        if loading:
            parts.append("loading…")
        if self.problem:
            parts.append(self.problem)
        self.query_one("#usage-title", Static).update(" · ".join(parts))

    def action_cycle_metric(self) -> None:
        self.metric = following(METRICS, self.metric)
        self._draw()  # the answer holds every metric: no new request
        self._show_title()

    def action_cycle_grouping(self) -> None:
        self.grouping = following(GROUPINGS, self.grouping)
        self.reload()

    def action_cycle_range(self) -> None:
        self.range = following(RANGES, self.range)
        self.bucket = RANGE_BUCKETS.get(self.range, self.bucket)
        self.reload()

    def action_cycle_bucket(self) -> None:
        self.bucket = following(BUCKETS, self.bucket)
        self.reload()

    def action_refresh(self) -> None:
        self.reload()
