"""The footer's key hints: they follow focus, and a click on one presses its key."""

from __future__ import annotations

import pytest

from console.screens.dashboard import DashboardScreen
from console.widgets.key_hints import KeyHints
from tests.console.dashboard_data import DashboardHarness, busy_box


def hint_text(app: DashboardHarness) -> str:
    return app.dashboard.query_one(KeyHints).plain


@pytest.mark.asyncio
async def test_the_hints_show_the_focused_panels_keys_and_follow_focus():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.dashboard.requests.focus()
        await pilot.pause()
        assert "Cancel request" in hint_text(app)

        app.dashboard.keys.focus()
        await pilot.pause()
        assert "Cancel request" not in hint_text(app)
        assert "New key" in hint_text(app)


@pytest.mark.asyncio
async def test_clicking_a_hint_presses_its_key():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        hints = app.dashboard.query_one(KeyHints)
        column = hints.plain.index("New key")

        await pilot.click(KeyHints, offset=(column, 0))
        await pilot.pause()

    assert [m.action_id for m in app.posted if isinstance(m, DashboardScreen.ActionRequested)] == ["key.create"]
