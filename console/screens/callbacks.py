"""Signed ReplyTo callbacks: pending, delivered and dead-lettered deliveries, newest first, with redeliver.

The newest page is asked for once (GET /callbacks) when the screen opens or the filter changes; after that the
"delivery" events keep it current, so nothing polls. Events that land while a page is on its way are applied over
it once it arrives, in order, so each row ends as its last event left it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Static

from console.format import count
from console.live_state import LiveState
from console.screens.base import LiveScreen
from console.widgets.job_tables import DeliveriesTable
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import Clock
from gateway_core.client import CorralError
from gateway_core.contracts.jobs import DeliveryPage, DeliveryState, DeliveryView

CALLBACKS_CSS = str(Path(__file__).parent.parent / "styles" / "callbacks.tcss")
PAGE_ROWS = 200
FILTERS: tuple[DeliveryState | None, ...] = (None, "pending", "delivered", "dead")


def _newest_first(deliveries: dict[str, DeliveryView]) -> list[DeliveryView]:
    return sorted(deliveries.values(), key=lambda view: (view["created_at"], view["id"]), reverse=True)


class CallbacksScreen(LiveScreen):
    """Callback deliveries. r redelivers the selected one (after a confirmation); f cycles the state shown."""

    CSS_PATH: ClassVar[str] = CALLBACKS_CSS
    AUTO_FOCUS = "#callbacks-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "next_filter", "Filter", id="callbacks.filter", tooltip="Show all, pending, delivered or dead"),
        Binding("ctrl+r", "refresh", "Refresh", id="callbacks.refresh", tooltip="Load the newest deliveries again"),
    ]

    @dataclass
    class PageLoaded(Message):
        load: int
        page: DeliveryPage

    @dataclass
    class LoadFailed(Message):
        load: int
        reason: str

    @dataclass
    class RedeliverRequested(Message):
        """The operator asked to redeliver this delivery; the app confirms, then asks corral-core."""

        delivery: DeliveryView

    def __init__(self, now: Clock = time.time, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.now = now
        self.state_filter: DeliveryState | None = None
        self.rows: dict[str, DeliveryView] = {}
        self.loads = 0  # bumped by every load: a page of an older one is dropped when it lands
        self.loading = False
        self.more = False  # the daemon has older deliveries than the page
        self._events_seen = 0  # LiveState.deliveries.seq when the rows last took its events
        self._load_seq = 0  # the same, when the current load started
        self._problem: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Callbacks", id="callbacks-title")
        yield Static("", id="callbacks-problem", markup=False)
        yield DeliveriesTable(self.now, id="callbacks-table")
        yield KeyHints()

    @property
    def table(self) -> DeliveriesTable:
        return self.query_one(DeliveriesTable)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._show)  # "next in 4m12s" counts down
        self.load()

    def on_screen_resume(self) -> None:
        if self.loads:
            self.load()  # events were not applied while another mode showed

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        if "deliveries" in changed and not self.loading:
            self._take_events(live)
            self._show()

    # -- loading ----------------------------------------------------------------------------------------------

    def load(self) -> None:
        self.loads += 1
        self.loading = True
        self._load_seq = self.host.live.deliveries.seq
        self._show_title()
        self.fetch_page(self.loads, self.state_filter)

    @work(exclusive=True, group="callbacks-page")
    async def fetch_page(self, load: int, state: DeliveryState | None) -> None:
        try:
            page = await self.host.client.list_deliveries(state=state, limit=PAGE_ROWS)
        except CorralError as error:
            self.post_message(self.LoadFailed(load, error.message))
            return
        self.post_message(self.PageLoaded(load, page))

    @on(PageLoaded)
    def _page_loaded(self, message: PageLoaded) -> None:
        if message.load != self.loads:
            return
        self.loading = False
        self.more = message.page["next_cursor"] is not None
        self.rows = {view["id"]: view for view in message.page["data"]}
        self._events_seen = self._load_seq
        self._take_events(self.host.live)
        self._problem = None
        self._show()

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        if message.load != self.loads:
            return
        self.loading = False
        self._problem = f"callbacks unavailable: {message.reason}"
        self._show()

    def _take_events(self, live: LiveState) -> None:
        for view in live.deliveries.since(self._events_seen):
            if self.state_filter is None or view["state"] == self.state_filter:
                self.rows[view["id"]] = view
            else:
                self.rows.pop(view["id"], None)  # it left the state shown
        self._events_seen = live.deliveries.seq
        if len(self.rows) > PAGE_ROWS:
            self.rows = {view["id"]: view for view in _newest_first(self.rows)[:PAGE_ROWS]}

    # -- showing ----------------------------------------------------------------------------------------------

    def _show(self) -> None:
        self.table.show(_newest_first(self.rows))
        problem = self.query_one("#callbacks-problem", Static)
        problem.display = bool(self._problem)
        problem.update(self._problem or "")
        self._show_title()

    def _show_title(self) -> None:
        states = Counter(view["state"] for view in self.rows.values())
        shown = self.state_filter or "all"
        parts = [f"{count(states[state])} {state}" for state in ("pending", "delivered", "dead") if states[state]]
        summary = " · ".join(parts) if parts else "none"
        newest = f" (the newest {PAGE_ROWS})" if self.more else ""
        state = " · loading…" if self.loading else ""
        self.query_one("#callbacks-title", Static).update(f"Callbacks · {shown} · {summary}{newest}{state}")

    # -- actions ----------------------------------------------------------------------------------------------

    def action_next_filter(self) -> None:
        self.state_filter = FILTERS[(FILTERS.index(self.state_filter) + 1) % len(FILTERS)]
        self.load()

    def action_refresh(self) -> None:
        self.load()

    def action_redeliver(self) -> None:
        delivery_id = self.table.cursor_key()
        if delivery_id is not None and delivery_id in self.rows:
            self.post_message(self.RedeliverRequested(self.rows[delivery_id]))
