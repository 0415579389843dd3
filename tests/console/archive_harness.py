"""A stand-in for corral-core's archive routes, and an app that shows one screen over it, for screen tests and
snapshots with fixed data. It answers in the contracts' shapes (tests/console/dashboard_data.py's factories)
and records what it was asked, so a test can say how many searches typing made.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.screen import Screen

from console.live_state import LiveState
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from gateway_core.client import CorralError
from gateway_core.contracts.history_views import HistoryDetailView, HistoryPage, HistoryRowView, UsageView
from tests.console.dashboard_data import history_detail, snapshot, usage_view


class FakeArchive:
    """history(), history_entry() and usage() as CorralClient has them, over rows held in memory (newest first)."""

    def __init__(self, rows: list[HistoryRowView], details: dict[str, HistoryDetailView] | None = None) -> None:
        self.rows = rows
        self.details = details or {}
        self.searches: list[dict[str, Any]] = []
        self.usages: list[dict[str, Any]] = []
        self.failure: str | None = None  # set: every call fails with this message

    async def history(self, *, limit: int = 100, cursor: str | None = None, **filters: Any) -> HistoryPage:
        self.searches.append({**filters, "limit": limit, "cursor": cursor})
        if self.failure:
            raise CorralError(self.failure, status=503)
        matching = [row for row in self.rows if _matches(row, filters)]
        start = int(cursor or 0)
        page = matching[start : start + limit]
        more = start + limit < len(matching)
        return {"rows": page, "next_cursor": str(start + limit) if more else None, "months": ["2025-10"]}

    async def history_entry(self, request_id: str) -> HistoryDetailView:
        if request_id in self.details:
            return self.details[request_id]
        for row in self.rows:
            if row["id"] == request_id:
                return history_detail(row)
        raise CorralError(f"no archived request with id '{request_id}'", status=404)

    async def usage(self, *, by: Any = "key", since: Any = "7d", until: Any = None, bucket: Any = "day") -> UsageView:
        self.usages.append({"by": by, "since": since, "bucket": bucket})
        if self.failure:
            raise CorralError(self.failure, status=503)
        return usage_view(by=by, bucket=bucket)


def _matches(row: HistoryRowView, filters: dict[str, Any]) -> bool:
    if filters.get("key") is not None and filters["key"] not in (row["key_name"], row["key_id"]):
        return False
    if filters.get("model") is not None and filters["model"] != row["model"]:
        return False
    status = filters.get("status")
    return status is None or status == str(row["status"]) or (status == "error" and row["status"] >= 400)


class ArchiveHarness(App[None]):
    """The ConsoleHost protocol (client, live) over a FakeArchive, showing one screen."""

    def __init__(self, archive: FakeArchive, make_screen: Any) -> None:
        super().__init__()
        self.live = LiveState()
        self.client = archive
        self.make_screen = make_screen

    def on_mount(self) -> None:
        theme = load_theme(builtin_themes_dir() / "corral-dark.yaml")
        self.register_theme(theme)
        self.theme = theme.name
        self.live.apply("snapshot", snapshot())
        screen: Screen[Any] = self.make_screen()
        self.push_screen(screen)
