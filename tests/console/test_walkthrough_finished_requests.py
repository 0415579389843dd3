"""Finished requests stay in the live panel, below the running ones and dimmed, with their status and duration
(found in the walkthrough: a short request vanished before it could be seen)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from console.app import CorralApp
from console.live_state import FINISHED_KEPT
from console.screens.dashboard import DashboardScreen
from console.widgets.panels import finished_key
from gateway_core.contracts.views import RequestEnd
from tests.console.dashboard_data import DashboardHarness, busy_box, cell, request, row_keys, settle
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for, wait_for_async

APP_WAIT_S = 15.0


def ended(request_id: str, status: int = 200, elapsed_s: float = 0.4) -> RequestEnd:
    view = request(request_id)
    return {**view, "elapsed_s": elapsed_s, "status": status, "ok": status < 400, "prompt_tokens": 3}


@pytest.mark.asyncio
@pytest.mark.llama_server
async def test_a_request_shorter_than_a_redraw_is_seen_in_the_live_panel_with_its_status_and_duration(
    corral_daemon: CorralDaemon, llama_servers: Callable[..., list[Any]]
) -> None:
    (server,) = llama_servers(1)
    corral_daemon.add_provider("local", server.base_url)
    key = corral_daemon.create_key("webapp")
    wait_for(lambda: corral_daemon.admin_call("GET", "/status").json()["models"].get("tiny"), "the model", APP_WAIT_S)
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                corral_daemon.base_url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            )
        assert answer.status_code == 200, answer.text
        row = finished_key(answer.headers["x-request-id"])
        await wait_for_async(
            lambda: row in row_keys(screen.requests), "the finished request's row", APP_WAIT_S, pause=pilot.pause
        )

        assert cell(screen.requests, row, "status") == "200"
        assert cell(screen.requests, row, "key") == "webapp"
        assert cell(screen.requests, row, "elapsed").endswith("s")
        assert screen.requests.get_cell(row, "model").style, "dimmed"
        assert f"the last {FINISHED_KEPT} below" in str(screen.query_one("#requests").border_title)


@pytest.mark.asyncio
async def test_the_panel_keeps_the_last_finished_requests_newest_first_below_the_running_ones() -> None:
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        running = row_keys(app.dashboard.requests)
        for index in range(FINISHED_KEPT + 5):
            app.feed("request.end", ended(f"done-{index}", status=502 if index == FINISHED_KEPT + 4 else 200))
        await pilot.pause()

        keys = row_keys(app.dashboard.requests)
        assert keys[: len(running)] == running, "the running requests stay on top"
        finished = keys[len(running) :]
        assert len(finished) == FINISHED_KEPT, "bounded"
        assert finished[0] == finished_key(f"done-{FINISHED_KEPT + 4}"), "newest first"
        assert finished[-1] == finished_key("done-5")
        assert cell(app.dashboard.requests, finished[0], "status") == "502"


@pytest.mark.asyncio
async def test_cancel_on_a_finished_row_says_there_is_nothing_to_cancel() -> None:
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.feed("request.end", ended("short"))
        await pilot.pause()
        table = app.dashboard.requests
        table.focus()
        table.move_cursor(row=table.get_row_index(finished_key("short")))
        await pilot.press("x")
        await pilot.pause()

        assert not app.posted, "nothing is sent to corral-core"
        assert any("nothing to cancel" in str(n.message) for n in app._notifications)
