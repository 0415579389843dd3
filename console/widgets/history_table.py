"""The History screen's table: archived requests in the order the daemon gave them (newest first), a page at a
time, and a message when the cursor or the scroll comes near the last row loaded, so the next page is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.message import Message

from console.format import dash, energy, latency, tokens, utc_time
from console.widgets.live_table import LiveTable, Row
from gateway_core.contracts.history_views import HistoryRowView

NEAR_END_ROWS = 20  # ask for the next page this many rows before the last one shows


def status_level(status: int) -> str:
    if status < 400:
        return "ok"
    return "warn" if status < 500 or status == 499 else "bad"


class HistoryTable(LiveTable):
    SORTED = False  # the daemon's order: newest first, and each page goes below the last
    FILTERABLE = False  # the screen's own `/` searches the whole archive, not just the pages loaded
    # What an operator scans for first fits 80 columns; the provider and the id follow.
    COLUMNS = (
        ("time", "time (UTC)", 19),
        ("status", "status", 6),
        ("key", "key", 10),
        ("model", "model", 14),
        ("tokens", "tokens", 9),
        ("latency", "latency", 7),
        ("ttft", "ttft", 6),
        ("energy", "energy", 8),
        ("provider", "provider", 10),
        ("id", "id", 36),
    )

    class NearEnd(Message):
        """The operator is close to the last row loaded: time for the next page."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(lambda: 0.0, id=id)  # archived rows do not age: no clock
        self._rows: list[tuple[str, Row]] = []

    def cells(self, row: HistoryRowView) -> Row:
        return (
            utc_time(row["started_at"]),
            self.level(str(row["status"]), status_level(row["status"])),
            row["key_name"] or row["key_id"] or "-",
            dash(row["model"]),
            tokens(row),
            latency(row["latency_s"]),
            latency(row["ttft_s"]),
            energy(row["energy_joules"]),
            dash(row["provider"]),
            row["id"],
        )

    def replace(self, rows: Iterable[HistoryRowView]) -> None:
        """Show these rows only (a new search), cursor on the first."""
        self._rows = [(row["id"], self.cells(row)) for row in rows]
        self.sync([])  # a new search starts a new order, not the old rows' positions
        self.sync(self._rows)
        self.move_cursor(row=0)

    def extend(self, rows: Iterable[HistoryRowView]) -> None:
        """Add the next page below the rows shown (a row already shown keeps its place)."""
        shown = set(self.row_keys)
        self._rows.extend((row["id"], self.cells(row)) for row in rows if row["id"] not in shown)
        self.sync(self._rows)

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        super().move_cursor(row=row, scroll=scroll)
        self.check_near_end()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.check_near_end()

    def check_near_end(self) -> None:
        """Post NearEnd when the cursor or the view is within NEAR_END_ROWS of the last row loaded."""
        last_shown = max(self.cursor_row, int(self.scroll_y) + self.size.height)
        if self.row_count and last_shown >= self.row_count - NEAR_END_ROWS:
            self.post_message(self.NearEnd())
