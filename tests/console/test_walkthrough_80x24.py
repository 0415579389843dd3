"""At 80x24 the footer keeps F1, F2, F3 and the palette, the keys table shows each key's expiry, and the provider
form's test result shows without scrolling (found in the walkthrough: each was cut off or below the fold)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from textual.binding import BindingType
from textual.pilot import Pilot

from console.app import CorralApp
from console.screens.provider_form import ProviderForm
from console.widgets.key_hints import KeyHints
from tests.console.dashboard_data import DashboardHarness, busy_box
from tests.console.test_forms import FormHost, text, type_into
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for_async

SMALL = (80, 24)
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens on it here


class ConsoleKeysHarness(DashboardHarness):
    """The dashboard with fixed data under the console's own app keys (F1 to F6, ctrl+q), as CorralApp has them."""

    BINDINGS: ClassVar[list[BindingType]] = CorralApp.BINDINGS


def footer(app: Any) -> str:
    return str(app.screen.query_one(KeyHints).plain)


@pytest.mark.asyncio
async def test_at_80_columns_the_footer_ends_with_f1_f2_f3_and_the_palette_whatever_it_cuts() -> None:
    app = ConsoleKeysHarness(busy_box())
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        line = footer(app)

        assert line.rstrip().endswith("f1 Help  f2 Dashboard  f3 Chat  ^p palette"), line
        assert "…" in line, "the screen's own keys are cut to make room"
        assert len(line) <= SMALL[0]
        assert "History" not in line, "F4 to F6 are in help and the palette, not the footer"


def test_the_dashboards_footer_at_80x24(snap_compare):
    assert snap_compare(ConsoleKeysHarness(busy_box()), terminal_size=SMALL)


def test_the_keys_panel_at_80x24_shows_expiry_and_revoked(snap_compare):
    async def focus_keys(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, DashboardHarness)
        app.dashboard.keys.focus()
        await pilot.pause()

    assert snap_compare(ConsoleKeysHarness(busy_box()), terminal_size=SMALL, run_before=focus_keys)


@pytest.mark.asyncio
async def test_the_keys_expiry_column_is_inside_the_screen_at_80_columns() -> None:
    app = ConsoleKeysHarness(busy_box())
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.dashboard.keys.focus()
        await pilot.pause()

        shown = app.export_screenshot()
        assert "expires" in shown
        assert "revoked" in shown


def test_the_provider_forms_test_result_at_80x24(snap_compare, corral_daemon: CorralDaemon):
    async def test_unreachable(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, FormHost)
        app.open(ProviderForm())
        await pilot.pause()
        await type_into(pilot, "#base_url", UNREACHABLE)
        await pilot.press("ctrl+t")
        await wait_for_async(lambda: text(app, "#test-result").startswith("down"), "the answer", pause=pilot.pause)
        app.screen.query_one("#name").focus()  # a cursor off the typed URL
        await pilot.pause()

    assert snap_compare(FormHost(corral_daemon.socket_path), terminal_size=SMALL, run_before=test_unreachable)


@pytest.mark.asyncio
async def test_the_provider_forms_test_result_is_in_view_at_80x24_however_the_form_scrolls(
    corral_daemon: CorralDaemon,
) -> None:
    app = FormHost(corral_daemon.socket_path)
    async with app.run_test(size=SMALL) as pilot:
        app.open(ProviderForm())
        await pilot.pause()
        await type_into(pilot, "#base_url", UNREACHABLE)
        await pilot.press("ctrl+t")
        await wait_for_async(lambda: text(app, "#test-result").startswith("down"), "the answer", pause=pilot.pause)
        app.screen.query_one(".form-body").scroll_end(animate=False)
        await pilot.pause()

        result = app.screen.query_one("#test-result").region
        assert result.height >= 3
        assert result.bottom <= SMALL[1] - 1, "the whole result sits above the footer"
