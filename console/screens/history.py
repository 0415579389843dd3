"""Past requests from the archive, newest first, a page at a time, with a filter line read as you type.

Only pages are ever fetched (GET /history with a cursor), so a month of 1,000,000 rows opens as fast as an empty
one; the next page is asked for when the cursor or the scroll nears the last row loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Static

from console.format import count
from console.live_state import LiveState
from console.screens.base import LiveScreen
from console.screens.history_detail import HistoryDetailScreen
from console.screens.history_filter import FilterError, HistoryFilter, parse_filter
from console.widgets.archive_alert import ArchiveAlert
from console.widgets.history_table import HistoryTable
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import Clock
from gateway_core.client import CorralError
from gateway_core.contracts.history_views import HistoryPage

HISTORY_CSS = str(Path(__file__).parent.parent / "styles" / "history.tcss")
PAGE_ROWS = 100
DEBOUNCE_S = 0.25  # filter as you type: one search once typing pauses, not one per key
PLACEHOLDER = "Filter: words search the bodies; key:NAME model:M provider:P status:4xx since:7d until:2026-11-03"


class HistoryScreen(LiveScreen):
    """The archive's requests. Enter opens one (HistoryDetailScreen); / goes to the filter line."""

    CSS_PATH: ClassVar[str] = HISTORY_CSS
    AUTO_FOCUS = "#history-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="history.open", tooltip="Show the request: metadata, bodies, answer"),
        Binding("slash", "filter", "Filter", id="history.filter", tooltip="Type filters, or words to search for"),
        Binding("ctrl+r", "refresh", "Refresh", id="history.refresh", tooltip="Search again from the newest"),
        Binding("escape", "to_list", "List", id="history.list", tooltip="From the filter line back to the list"),
    ]

    @dataclass
    class PageLoaded(Message):
        """A page of `search` came back; `first` says it starts a new list rather than extending one."""

        search: int
        page: HistoryPage
        first: bool

    @dataclass
    class LoadFailed(Message):
        search: int
        reason: str

    def __init__(self, now: Clock = time.time, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.now = now
        self.filters = HistoryFilter()
        self.next_cursor: str | None = None
        self.loading = False
        self.months: list[str] = []
        self.searches = 0  # bumped by every new search: pages of an older one are dropped when they land
        self.shown_search = 0  # the search whose first page the table shows
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="history-bar"):
            yield Static("History", id="history-title")
            yield ArchiveAlert(id="archive-alert")
        yield Input(placeholder=PLACEHOLDER, id="history-filter")
        yield Static("", id="history-problem", markup=False)
        yield HistoryTable(id="history-table")
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one(ArchiveAlert).show(self.host.live.archive)
        self.search()

    def on_screen_resume(self) -> None:
        if self.shown_search:  # back from another mode or the detail: show what arrived meanwhile, if unfiltered
            self.query_one(ArchiveAlert).show(self.host.live.archive)
            if self.filters == HistoryFilter() and self.table.cursor_row == 0:
                self.search()

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        if "archive" in changed:
            self.query_one(ArchiveAlert).show(live.archive)

    @property
    def table(self) -> HistoryTable:
        return self.query_one(HistoryTable)

    # -- searching --------------------------------------------------------------------------------------------

    @on(Input.Changed, "#history-filter")
    def _filter_typed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, self._apply_filter)

    @on(Input.Submitted, "#history-filter")
    def _filter_submitted(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._apply_filter()
        self.table.focus()

    def _apply_filter(self) -> None:
        line = self.query_one("#history-filter", Input).value
        try:
            filters = parse_filter(line, self.now())
        except FilterError as error:
            self._problem(str(error))  # said inline; the list keeps the last good search
            return
        self._problem(None)
        if filters != self.filters:
            self.filters = filters
            self.search()

    def search(self) -> None:
        """Start over from the newest row with the current filters."""
        self.searches += 1
        self.next_cursor = None
        self.loading = True
        self._show_title()
        self.load_page(self.searches, self.filters, None)

    @work(exclusive=True, group="history-page")
    async def load_page(self, search: int, filters: HistoryFilter, cursor: str | None) -> None:
        try:
            page = await filters.fetch(self.host.client, limit=PAGE_ROWS, cursor=cursor)
        except CorralError as error:
            self.post_message(self.LoadFailed(search, error.message))
            return
        self.post_message(self.PageLoaded(search, page, first=cursor is None))

    @on(PageLoaded)
    def _page_loaded(self, message: PageLoaded) -> None:
        if message.search != self.searches:
            return  # a search the operator has since replaced
        self.loading = False
        page = message.page
        self.next_cursor = page["next_cursor"]
        self.months = page["months"]
        if message.first:
            self.shown_search = message.search
            self.table.replace(page["rows"])
            self._problem(None)
        else:
            self.table.extend(page["rows"])
        self._show_title()
        self.call_after_refresh(self.table.check_near_end)  # a short first page may already end on screen

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        if message.search != self.searches:
            return
        self.loading = False
        self._problem(f"history unavailable: {message.reason}")
        self._show_title()

    @on(HistoryTable.NearEnd)
    def _near_end(self) -> None:
        if self.next_cursor is not None and not self.loading:
            self.loading = True
            self.load_page(self.searches, self.filters, self.next_cursor)

    # -- showing ----------------------------------------------------------------------------------------------

    def _problem(self, text: str | None) -> None:
        problem = self.query_one("#history-problem", Static)
        problem.display = bool(text)
        problem.update(text or "")

    def _show_title(self) -> None:
        rows = self.table.row_count
        more = "+" if self.next_cursor else ""
        state = " · loading…" if self.loading else ""
        months = f" · {', '.join(self.months)}" if self.months else ""
        self.query_one("#history-title", Static).update(f"History · {count(rows)}{more} requests{months}{state}")

    # -- actions ----------------------------------------------------------------------------------------------

    def action_open(self) -> None:
        request_id = self.table.cursor_key()
        if request_id is not None:
            self.app.push_screen(HistoryDetailScreen(request_id))

    def action_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()

    def action_to_list(self) -> None:
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "to_list":
            return self.focused is not self.table  # shown only while typing a filter
        return True

    def action_refresh(self) -> None:
        self.search()
