"""The archive for console tests: a real corral-core holding requests a test made (the `archived` fixture), and a
stand-in for its routes with an app showing one screen over it, for screen tests and snapshots with fixed data.
The stand-in answers in the contracts' shapes (tests/console/dashboard_data.py's factories) and records what it
was asked, so a test can say how many searches typing made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from textual.app import App
from textual.screen import Screen

from console.live_state import LiveState
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from gateway_core.client import CorralError
from gateway_core.contracts.history_views import HistoryDetailView, HistoryPage, HistoryRowView, UsageView
from tests.console.dashboard_data import history_detail, snapshot, usage_view
from tests.fakes.fault_server import FaultServer
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for


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


# -- a real corral-core with archived requests ----------------------------------------------------------


REPLY = "Hello from the **archive** test"


@dataclass
class Archived:
    daemon: CorralDaemon
    whole: str  # request ids, from x-request-id
    streamed: str
    refused: str
    key_id: str


def chat(daemon: CorralDaemon, key: str, *, stream: bool, content: str = "say hello") -> httpx.Response:
    body = {"model": "tiny", "messages": [{"role": "user", "content": content}], "stream": stream}
    return httpx.post(
        f"{daemon.base_url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def archived_ids(daemon: CorralDaemon) -> set[str]:
    response = daemon.admin_call("GET", "/history?limit=100")
    return {row["id"] for row in response.json()["rows"]} if response.status_code == 200 else set()


@pytest.fixture(name="archived")
def archived_fixture(corral_daemon: CorralDaemon) -> Iterator[Archived]:
    """A real corral-core whose archive holds a whole chat answer, a streamed one and a request refused for its key."""
    with FaultServer(model="tiny", reply=REPLY) as upstream:
        corral_daemon.add_provider("gpu0", upstream.base_url)
        key = corral_daemon.create_key("webapp")
        whole = chat(corral_daemon, key, stream=False, content="tell me about zebras")
        streamed = chat(corral_daemon, key, stream=True)
        refused = chat(corral_daemon, key[:-4] + "0000", stream=False)
        assert (whole.status_code, streamed.status_code, refused.status_code) == (200, 200, 401)
        ids = [response.headers["x-request-id"] for response in (whole, streamed, refused)]
        # The writer flushes every 0.25 s: wait for the rows, not for a time.
        wait_for(lambda: set(ids) <= archived_ids(corral_daemon), "the three requests in the archive")
        yield Archived(corral_daemon, *ids, key_id=key.split("-")[2])
