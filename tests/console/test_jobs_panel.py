"""The dashboard's Jobs panel over fixed LiveState: counts in its title, the newest jobs first, rows that follow the
job events in place, the keys that cancel and retry, and 10,000 jobs without listing them all."""

from __future__ import annotations

import time

import pytest

from console.job_state import RECENT_JOBS
from console.screens.dashboard import JOBS_SHOWN, DashboardScreen
from console.widgets.live_table import LiveTable
from gateway_core.contracts.jobs import JobCounts
from gateway_core.contracts.views import Snapshot
from tests.console.dashboard_data import NOW, DashboardHarness, busy_box, cell, row_keys, settle
from tests.console.jobs_data import job, job_counts

WEBAPP, BATCH = "a1b2c3d4e5f6", "0f9e8d7c6b5a"  # busy_box()'s keys


def with_jobs(counts: JobCounts) -> Snapshot:
    return {**busy_box(), "jobs": counts}


class JobsHarness(DashboardHarness):
    """The dashboard harness, also keeping the row actions the screen posts."""

    def on_dashboard_screen_item_action(self, message: DashboardScreen.ItemAction) -> None:
        self.posted.append(message)


def queue_of_four(app: DashboardHarness) -> None:
    app.live.jobs.seed(
        [
            job("job_d", created_at=NOW - 5, key_id=BATCH, tag="nightly"),
            job("job_c", state="running", created_at=NOW - 20),
            job("job_b", state="failed", attempts=3, created_at=NOW - 65),
            job("job_a", state="succeeded", created_at=NOW - 3600),
        ]
    )
    app.dashboard.live_changed(app.live, {"jobs"})


def title(app: DashboardHarness) -> str:
    return str(app.dashboard.query_one("#jobs").border_title)


@pytest.mark.asyncio
async def test_the_panel_stays_hidden_until_the_queue_has_a_job():
    app = DashboardHarness(with_jobs(job_counts()))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        panel = app.dashboard.query_one("#jobs")
        assert panel.styles.display == "none"

        app.feed("job", job("job_new", created_at=NOW))
        await pilot.pause()

        assert panel.styles.display == "block"
        assert title(app) == "Jobs · 1 queued · 0 running"


@pytest.mark.asyncio
async def test_the_title_counts_every_state_and_the_rows_list_the_newest_first():
    app = DashboardHarness(with_jobs(job_counts(queued=1, running=1, succeeded=120, failed=1)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        queue_of_four(app)
        await pilot.pause()
        table = app.dashboard.jobs

        assert title(app) == "Jobs · 1 queued · 1 running · 120 succeeded · 1 failed"
        assert row_keys(table) == ["job_d", "job_c", "job_b", "job_a"]
        assert [cell(table, "job_d", column) for column in ("key", "state", "age", "attempts", "tag")] == [
            "batch",
            "queued",
            "5s",
            "0",
            "nightly",
        ]
        assert cell(table, "job_b", "age") == "1m05s"
        assert cell(table, "job_b", "attempts") == "3"
        assert cell(table, "job_c", "provider") == "gpu0"


@pytest.mark.asyncio
async def test_a_job_event_changes_its_row_in_place_a_new_job_goes_on_top_and_the_cursor_stays():
    app = DashboardHarness(with_jobs(job_counts(queued=1, running=1, succeeded=120, failed=1)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        queue_of_four(app)
        table = app.dashboard.jobs
        table.focus()
        table.move_cursor(row=table.get_row_index("job_c"))

        app.feed("job", job("job_c", state="succeeded", created_at=NOW - 20))
        app.feed("job", job("job_e", created_at=NOW - 1))
        await pilot.pause()

        assert cell(table, "job_c", "state") == "succeeded"
        assert row_keys(table) == ["job_e", "job_d", "job_c", "job_b", "job_a"]
        assert table.cursor_key() == "job_c"
        assert title(app) == "Jobs · 2 queued · 0 running · 121 succeeded · 1 failed"


@pytest.mark.asyncio
async def test_x_asks_to_cancel_and_r_to_retry_the_selected_job():
    app = JobsHarness(with_jobs(job_counts(queued=1, running=1, succeeded=120, failed=1)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        queue_of_four(app)
        table = app.dashboard.jobs
        table.focus()
        table.move_cursor(row=table.get_row_index("job_c"))
        await pilot.press("x")
        table.move_cursor(row=table.get_row_index("job_b"))
        await pilot.press("r")
        await pilot.pause()

        actions = [(m.section, m.key, m.action) for m in app.posted if isinstance(m, DashboardScreen.ItemAction)]
        assert actions == [("jobs", "job_c", "cancel"), ("jobs", "job_b", "retry")]


@pytest.mark.asyncio
async def test_ten_thousand_queued_jobs_show_as_their_count_and_the_newest_fifty(monkeypatch):
    app = DashboardHarness(with_jobs(job_counts()))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table: LiveTable = app.dashboard.jobs
        started = time.perf_counter()
        for i in range(10_000):
            app.live.apply("job", job(f"job_{i:05d}", created_at=NOW + i))
        app.dashboard.live_changed(app.live, {"jobs"})
        folded_and_drawn_s = time.perf_counter() - started
        await pilot.pause()

        assert title(app) == "Jobs · 10,000 queued · 0 running"
        assert table.row_count == JOBS_SHOWN
        assert row_keys(table)[:2] == ["job_09999", "job_09998"]
        assert len(app.live.jobs.recent) <= 2 * RECENT_JOBS
        # Generous on a shared 2-core box: the point is that the cost is the events', not a table of 10,000 rows.
        assert folded_and_drawn_s < 2.0

        painted: list[int] = []
        real_render_line = table.render_line
        monkeypatch.setattr(table, "render_line", lambda y: (painted.append(y), real_render_line(y))[1])
        redraw_started = time.perf_counter()
        app.feed("job", job("job_09999", state="running", created_at=NOW + 9999))
        await pilot.pause()
        assert time.perf_counter() - redraw_started < 0.5
        assert cell(table, "job_09999", "state") == "running"
        assert painted == [1], "one line under the header: the newest job's"
