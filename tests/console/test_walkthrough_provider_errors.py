"""A provider that cannot be reached says why in words, in the form's test and on its row (found in the walkthrough)."""

from __future__ import annotations

import pytest

from console.app import CorralApp
from console.screens.dashboard import DashboardScreen
from console.screens.provider_form import ProviderForm
from console.widgets.panels import DashboardPanel
from tests.console.dashboard_data import cell, row_keys
from tests.console.test_forms import FormHost, text, type_into
from tests.testbed import CorralDaemon
from tests.testbed.ports import free_port
from tests.testbed.waiting import wait_for_async

pytestmark = pytest.mark.asyncio

APP_WAIT_S = 15.0


async def test_a_test_that_cannot_connect_says_so_in_words_and_ctrl_d_shows_the_full_answer(
    corral_daemon: CorralDaemon,
) -> None:
    port = free_port()  # nothing listens there
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open(ProviderForm())
        await pilot.pause()
        await type_into(pilot, "#base_url", f"http://127.0.0.1:{port}")
        await pilot.press("ctrl+t")
        await wait_for_async(lambda: text(app, "#test-result").startswith("down"), "the answer", pause=pilot.pause)

        summary = text(app, "#test-result")
        assert f"connection refused: nothing listens on 127.0.0.1:{port}" in summary
        assert "ssl:default" not in summary
        assert "ClientConnectorError" not in summary
        assert "ctrl+o" in summary

        await pilot.press("ctrl+o")
        detail = text(app, "#test-result")
        assert "detail: cannot reach" in detail
        assert "(ClientConnectorError)" in detail, "the error's kind is one key away"
        assert "error: ClientConnectorError: Cannot connect to host" in detail, "and the library's own text"

        await pilot.press("ctrl+o")
        assert text(app, "#test-result") == summary


async def test_a_down_provider_shows_its_reason_on_its_row(corral_daemon: CorralDaemon) -> None:
    port = free_port()
    corral_daemon.add_provider("gone", f"http://127.0.0.1:{port}")
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await wait_for_async(
            lambda: "gone" in row_keys(screen.providers) and cell(screen.providers, "gone", "state") == "down",
            "the provider to be probed down",
            APP_WAIT_S,
            pause=pilot.pause,
        )

        assert cell(screen.providers, "gone", "models") == f"⚠ connection refused: nothing listens on 127.0.0.1:{port}"


async def test_at_80_columns_a_down_providers_reason_shows_above_the_table(corral_daemon: CorralDaemon) -> None:
    port = free_port()
    corral_daemon.add_provider("gone", f"http://127.0.0.1:{port}")
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        panel = screen.query_one("#providers", DashboardPanel)
        await wait_for_async(
            lambda: "is down" in str(panel.notice.content), "the reason above the table", APP_WAIT_S, pause=pilot.pause
        )

        assert str(panel.notice.content) == f"gone is down: connection refused: nothing listens on 127.0.0.1:{port}"
        assert panel.notice.display
