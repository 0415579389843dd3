"""What the dashboard's Jobs panel and the Callbacks screen look like at 80x24 and 120x40, with fixed data, a fixed
clock and no daemon.

After a deliberate visual change: `pytest tests/console/test_jobs_snapshots.py --snapshot-update`, then look at
the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

from console.live_state import LiveState
from console.screens.callbacks import CallbacksScreen
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from gateway_core.client import CorralError
from gateway_core.contracts.jobs import DeliveryPage, DeliveryState, DeliveryView
from tests.console.dashboard_data import NOW, DashboardHarness, busy_box, settle
from tests.console.jobs_data import delivery, job, job_counts

SIZES = [(80, 24), (120, 40)]
BATCH = "0f9e8d7c6b5a"


def queued_box() -> DashboardHarness:
    app = DashboardHarness({**busy_box(), "jobs": job_counts(queued=1_204, running=2, succeeded=9_812, failed=3)})
    app.call_later(_seed, app)
    return app


def _seed(app: DashboardHarness) -> None:
    app.live.jobs.seed(
        [
            job("job_01jd2x3y4z5a6b7c8d9e0f1g2h", created_at=NOW - 2, key_id=BATCH, tag="nightly"),
            job("job_01jd2x3y4z5a6b7c8d9e0f1g2g", created_at=NOW - 3, key_id=BATCH, tag="nightly"),
            job("job_01jd2x3y4z5a6b7c8d9e0f1g2f", state="running", created_at=NOW - 14, model="llama3-8b"),
            job("job_01jd2x3y4z5a6b7c8d9e0f1g2e", state="running", created_at=NOW - 41, attempts=2, provider="gpu1"),
            job("job_01jd2x3y4z5a6b7c8d9e0f1g2d", state="failed", created_at=NOW - 300, attempts=3),
            job("job_01jd2x3y4z5a6b7c8d9e0f1g2c", state="succeeded", created_at=NOW - 3600),
        ]
    )
    app.dashboard.live_changed(app.live, {"jobs"})


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_dashboard_with_queued_jobs(snap_compare, size):
    # At 80x24 only the focused panel opens: Tab twice from the providers (past the keys) reaches the Jobs panel.
    press = ["tab", "tab"] if size == (80, 24) else []
    assert snap_compare(queued_box(), terminal_size=size, press=press, run_before=settle)


# -- the Callbacks screen over fixed deliveries -----------------------------------------------------------


class FakeCallbacks:
    """list_deliveries() and redeliver() as CorralClient has them, over deliveries held in memory (newest first)."""

    def __init__(self, deliveries: list[DeliveryView]) -> None:
        self.deliveries = deliveries
        self.asked: list[DeliveryState | None] = []
        self.redelivered: list[str] = []

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 100, cursor: str | None = None
    ) -> DeliveryPage:
        self.asked.append(state)
        rows = [d for d in self.deliveries if state is None or d["state"] == state][:limit]
        return {"object": "list", "data": rows, "next_cursor": None}

    async def redeliver(self, delivery_id: str) -> DeliveryView:
        for index, found in enumerate(self.deliveries):
            if found["id"] == delivery_id:
                self.redelivered.append(delivery_id)
                self.deliveries[index] = {**found, "state": "pending", "attempts": 0, "next_attempt_at": NOW}
                return self.deliveries[index]
        raise CorralError(f"no callback delivery with id '{delivery_id}'", status=404)


def fixed_deliveries() -> list[DeliveryView]:
    return [
        delivery("msg_01jd2x3y4z5a6b7c8d9e0f1g2h_1", created_at=NOW - 10, attempts=2),
        delivery("msg_01jd2x3y4z5a6b7c8d9e0f1g2g_1", state="delivered", created_at=NOW - 40),
        delivery(
            "msg_01jd2x3y4z5a6b7c8d9e0f1g2f_1",
            state="dead",
            created_at=NOW - 86400,
            attempts=10,
            last_status=None,
            last_error="connection refused",
            job_state="failed",
        ),
        delivery("msg_01jd2x3y4z5a6b7c8d9e0f1g2e_2", state="dead", created_at=NOW - 90000, attempts=1, last_status=410),
    ]


class CallbacksHarness(App[None]):
    """The ConsoleHost protocol (client, live) over FakeCallbacks, showing the Callbacks screen."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.live = LiveState()
        self.client = client
        self.posted: list[CallbacksScreen.RedeliverRequested] = []

    def on_mount(self) -> None:
        theme = load_theme(builtin_themes_dir() / "corral-dark.yaml")
        self.register_theme(theme)
        self.theme = theme.name
        self.push_screen(CallbacksScreen(now=lambda: NOW))

    def on_callbacks_screen_redeliver_requested(self, message: CallbacksScreen.RedeliverRequested) -> None:
        self.posted.append(message)


async def settle_page(pilot: Pilot[None]) -> None:
    """Let the screen's first page answer and render."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_callbacks_screen(snap_compare, size):
    app = CallbacksHarness(FakeCallbacks(fixed_deliveries()))
    assert snap_compare(app, terminal_size=size, run_before=settle_page)
