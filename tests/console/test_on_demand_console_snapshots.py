"""What models on demand look like on the dashboard at 120x40 and 80x24, with fixed data and a fixed clock: the
containers panel with warm, loading, cold and failed deployments, a router-mode llama-server's models, and a
failed deployment's detail.

After a deliberate visual change: `pytest tests/console/test_on_demand_console_snapshots.py --snapshot-update`,
then look at the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

from textual.pilot import Pilot

from console.screens.deployment_detail import DeploymentDetailScreen
from tests.console.dashboard_data import NOW, DashboardHarness, decision, on_demand_box

SMALL = (80, 24)
LARGE = (120, 40)


def test_on_demand_deployments_and_a_router_at_120x40(snap_compare):
    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=LARGE)


def test_the_containers_panel_focused_at_80x24(snap_compare):
    # Back from the providers (focused first) to the containers; the footer lists the keys for an on-demand row.
    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=SMALL, press=["shift+tab"])


def test_a_routers_models_at_80x24_with_one_selected(snap_compare):
    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=SMALL, press=["down", "down"])


def test_a_failed_deployments_detail_at_120x40(snap_compare):
    app = DashboardHarness(on_demand_box())

    async def open_detail(pilot: Pilot[None]) -> None:
        app.live.apply("fleet.decision", decision("vision", "start", "a request for 'vision' arrived", at=NOW - 41))
        await pilot.app.push_screen(DeploymentDetailScreen("vision", now=lambda: NOW))
        await pilot.pause()

    assert snap_compare(app, terminal_size=LARGE, run_before=open_detail)
