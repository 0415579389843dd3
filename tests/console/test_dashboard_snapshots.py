"""What the dashboard looks like at 80x24 and 120x40, with fixed data and a fixed clock.

After a deliberate visual change: `pytest tests/console/test_dashboard_snapshots.py --snapshot-update`,
then look at the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

from tests.console.dashboard_data import DashboardHarness, busy_box, no_gpus, provider, snapshot

SMALL = (80, 24)
LARGE = (120, 40)


def test_dashboard_at_80x24_opens_the_focused_panel(snap_compare):
    assert snap_compare(DashboardHarness(busy_box()), terminal_size=SMALL)


def test_dashboard_at_80x24_after_tab_to_the_live_requests(snap_compare):
    assert snap_compare(DashboardHarness(busy_box()), terminal_size=SMALL, press=["tab", "tab"])


def test_dashboard_at_120x40_shows_every_panel(snap_compare):
    assert snap_compare(DashboardHarness(busy_box()), terminal_size=LARGE)


def test_first_run_at_80x24(snap_compare):
    assert snap_compare(DashboardHarness(snapshot()), terminal_size=SMALL)


def test_first_run_at_120x40(snap_compare):
    assert snap_compare(DashboardHarness(snapshot()), terminal_size=LARGE)


def test_no_driver_and_no_docker_at_120x40(snap_compare):
    engine_down = {
        "engine": {"state": "unavailable", "reason": "Docker is not running at unix:///var/run/docker.sock"},
        "deployments": [],
    }
    data = snapshot(
        providers=[provider("openai", type="openai", models=("gpt-4o-mini",), capacity=16)],
        gpu_data=no_gpus("no NVIDIA driver: the NVIDIA kernel driver is not loaded"),
        fleet_data=engine_down,
    )
    assert snap_compare(DashboardHarness(data), terminal_size=LARGE)
