"""Form hints and dialog details keep their width over the dashboard, whose stylesheet is loaded app-wide (a
`.hint` rule of the dashboard's once squeezed every form hint into a 4-cell column: "high/er/tier/s")."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.screens.confirm import ConfirmScreen
from console.screens.provider_form import ProviderForm
from tests.console.dashboard_data import DashboardHarness, on_demand_box

SMALL = (80, 24)
LARGE = (120, 40)


def hint_widths(app: DashboardHarness, selector: str) -> list[int]:
    return [hint.size.width for hint in app.screen.query(selector).results(Static)]


@pytest.mark.asyncio
async def test_a_forms_field_hints_take_the_forms_width_over_the_dashboard():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await app.push_screen(ProviderForm())
        await pilot.pause()

        widths = hint_widths(app, ".field-hint")
        priority = next(
            hint for hint in app.screen.query(".field-hint").results(Static) if "higher tiers" in str(hint.content)
        )

        assert widths
        assert min(widths) >= 40, widths
        assert priority.size.height == 1, "the priority hint is one line, not one word a line"


@pytest.mark.asyncio
async def test_a_confirm_dialogs_detail_wraps_at_the_dialogs_width():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        detail = "the key stops working at once for every app that uses it; this cannot be undone"
        await app.push_screen(ConfirmScreen("Revoke key app?", detail))
        await pilot.pause()

        (width,) = hint_widths(app, "#detail")

        assert width > 22


def test_the_provider_form_over_the_dashboard_at_80x24(snap_compare):
    async def open_form(pilot: Pilot[None]) -> None:
        await pilot.app.push_screen(ProviderForm())
        await pilot.pause()

    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=SMALL, run_before=open_form)


def test_the_provider_form_over_the_dashboard_at_120x40(snap_compare):
    async def open_form(pilot: Pilot[None]) -> None:
        await pilot.app.push_screen(ProviderForm())
        await pilot.pause()

    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=LARGE, run_before=open_form)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_a_confirm_dialog_over_the_dashboard(snap_compare, size: tuple[int, int]):
    async def open_dialog(pilot: Pilot[None]) -> None:
        detail = "the key stops working at once for every app that uses it; this cannot be undone"
        await pilot.app.push_screen(ConfirmScreen("Revoke key app?", detail))
        await pilot.pause()

    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=size, run_before=open_dialog)
