"""The dashboard at the issue's scale: 8 GPUs, 32 deployments, 20 providers, 200 keys and hundreds of live
requests, with rows drawn only where they can be seen and again only when they change."""

from __future__ import annotations

from typing import Any

import pytest

from console.live_state import FINISHED_KEPT
from console.widgets.panels import finished_key
from tests.console.dashboard_data import (
    NOW,
    DashboardHarness,
    cell,
    deployment,
    fleet,
    gpu,
    gpus,
    key,
    provider,
    request,
    row_keys,
    settle,
    snapshot,
)


def fleet_at_scale() -> dict[str, Any]:
    return snapshot(
        providers=[provider(f"p{i:02d}", capacity=32) for i in range(20)],
        keys=[key(f"{i:012x}", f"app-{i:03d}", rpm=600, last_used_at=NOW - i) for i in range(200)],
        gpu_data=gpus(*(gpu(i) for i in range(8))),
        fleet_data=fleet(*(deployment(f"p{i:02d}", port=9000 + i) for i in range(32))),
    )


def send_requests(app: DashboardHarness, kind: str, count: int, **fields: Any) -> None:
    """`kind` events for req-0 ... req-(count-1), spread over the 20 providers, then one redraw."""
    for i in range(count):
        app.live.apply(kind, request(f"req-{i}", provider=f"p{i % 20:02d}", **fields))
    app.dashboard.live_changed(app.live, {"requests"})


@pytest.mark.asyncio
async def test_five_hundred_requests_and_two_hundred_keys_keep_every_table_exact_where_it_is_seen():
    app = DashboardHarness(fleet_at_scale())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.dashboard
        for i in range(500):
            app.live.apply("request.start", request(f"req-{i}", provider=f"p{i % 20:02d}", started_at=NOW - i % 60))
        screen.live_changed(app.live, {"requests"})
        for tick in range(3):  # three 1 Hz rounds: every request progresses, 50 end, every key's usage moves
            for i in range(500):
                if f"req-{i}" in app.live.requests:
                    app.live.apply(
                        "request.progress",
                        request(f"req-{i}", provider=f"p{i % 20:02d}", completion_tokens=10 * (tick + 1)),
                    )
            for i in range(tick * 50, tick * 50 + 50):
                app.live.apply("request.end", {**request(f"req-{i}"), "status": 200, "ok": True, "prompt_tokens": 1})
            for i in range(200):
                app.live.apply("key", key(f"{i:012x}", f"app-{i:03d}", rpm=600, requests_last_minute=tick))
            screen.live_changed(app.live, {"requests", "keys", "providers"})
        await pilot.pause()

        assert screen.requests.row_count == 350 + FINISHED_KEPT  # the running, then the newest finished
        assert row_keys(screen.requests)[-FINISHED_KEPT:] == [finished_key(f"req-{i}") for i in range(149, 129, -1)]
        assert screen.keys.row_count == 200
        assert screen.providers.row_count == 20
        assert screen.fleet.row_count == 32
        assert screen.gpus.row_count == 8
        assert cell(screen.requests, "req-150", "tokens") == "30"  # the top rows, in view
        assert cell(screen.keys, f"{0:012x}", "rpm") == "2"
        for table, row_key in ((screen.requests, "req-499"), (screen.keys, f"{199:012x}")):  # far out of view
            table.move_cursor(row=table.get_row_index(row_key))
            await pilot.pause()
        assert cell(screen.requests, "req-499", "tokens") == "30"
        assert cell(screen.keys, f"{199:012x}", "rpm") == "2"


@pytest.mark.asyncio
async def test_rows_changing_out_of_view_repaint_nothing_and_show_their_change_when_scrolled_to(monkeypatch):
    app = DashboardHarness(fleet_at_scale())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.requests
        send_requests(app, "request.start", 300)
        await pilot.pause()
        painted: list[int] = []
        real_render_line = table.render_line
        monkeypatch.setattr(table, "render_line", lambda y: (painted.append(y), real_render_line(y))[1])

        for i in range(200, 300):
            app.live.apply("request.progress", request(f"req-{i}", provider=f"p{i % 20:02d}", completion_tokens=7))
        app.dashboard.live_changed(app.live, {"requests"})
        await pilot.pause()

        assert painted == [], "no line on screen changed"
        assert cell(table, "req-299", "tokens") == "7"

        table.scroll_end(animate=False, immediate=True)
        await pilot.pause()

        last_line = table.size.height - 1
        assert last_line in painted
        drawn = "".join(segment.text for segment in real_render_line(last_line))
        assert drawn.split()[-4:] == ["3s", "running", "7", "-"], (
            "the bottom row is req-299: 3 s old, running, 7 tokens, no rate yet"
        )


@pytest.mark.asyncio
async def test_a_burst_of_ended_requests_keeps_the_survivors_in_order_and_the_cursor_on_its_row():
    app = DashboardHarness(fleet_at_scale())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.dashboard
        send_requests(app, "request.start", 300)
        screen.requests.move_cursor(row=screen.requests.get_row_index("req-288"))

        ended = [f"req-{j}" for i in range(0, 300, 3) for j in (i + 1, i + 2)]
        for request_id in ended:  # a request.end carries the request's whole view, and how it ended
            app.live.apply("request.end", {**request(request_id), "status": 200, "ok": True, "prompt_tokens": 1})
        screen.live_changed(app.live, {"requests"})
        await pilot.pause()

        survivors = [f"req-{i}" for i in range(0, 300, 3)]
        kept = [finished_key(request_id) for request_id in reversed(ended[-FINISHED_KEPT:])]  # newest first
        assert row_keys(screen.requests) == survivors + kept
        assert screen.requests.cursor_key() == "req-288"
