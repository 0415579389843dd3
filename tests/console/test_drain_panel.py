"""The dashboard's providers panel shows a drain as it goes: draining in the warning colour, then drained, muted."""

from __future__ import annotations

import pytest
from rich.text import Text

from tests.console.dashboard_data import DashboardHarness, cell, provider, settle, snapshot


@pytest.mark.asyncio
async def test_a_provider_being_drained_shows_draining_then_drained_in_place():
    app = DashboardHarness(snapshot(providers=[provider("gpu0"), provider("gpu1")]))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.providers

        for state, level in (("draining", "warn"), ("drained", "muted"), ("ready", "ok")):
            app.feed("provider", provider("gpu0", state=state))
            await pilot.pause()

            assert cell(table, "gpu0", "state") == state
            shown = table.get_cell("gpu0", "state")
            assert isinstance(shown, Text)
            assert shown.style == table.level_style(level), state
            assert cell(table, "gpu1", "state") == "ready"
