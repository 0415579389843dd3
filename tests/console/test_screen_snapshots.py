"""What the chat, key, help, history and usage screens look like at 80x24 and 120x40, with fixed data and no daemon.

After a deliberate visual change: `pytest tests/console/test_screen_snapshots.py --snapshot-update`,
then look at the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen

from console.live_state import LiveState
from console.screens.chat import ChatScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from console.screens.history_detail import HistoryDetailScreen
from console.screens.key_forms import KeyCreateForm
from console.screens.usage import UsageScreen
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from gateway_core.contracts.history_views import HistoryRowView
from tests.console.archive_harness import ArchiveHarness, FakeArchive
from tests.console.dashboard_data import NOW, history_row, provider, snapshot

SIZES = [(80, 24), (120, 40)]


class ScreenHarness(App[None]):
    """The host protocol with fixed LiveState and no daemon, showing one screen."""

    def __init__(self, make_screen: Any) -> None:
        super().__init__()
        self.live = LiveState()
        self.client = None
        self.make_screen = make_screen

    def on_mount(self) -> None:
        theme = load_theme(builtin_themes_dir() / "corral-dark.yaml")
        self.register_theme(theme)
        self.theme = theme.name
        self.live.apply("snapshot", snapshot(providers=[provider("gpu0", models=("qwen2.5-7b",))]))
        screen: Screen[Any] = self.make_screen()
        self.push_screen(screen)


HELP_ROWS = [
    ("f3", "Chat", "app.chat"),
    ("f2", "Dashboard", "app.dashboard"),
    ("^q", "Quit", "app.quit"),
    ("d", "Deploy", "fleet.deploy"),
    ("n", "New key", "key.create"),
    ("p", "Add endpoint", "provider.add"),
    ("e", "Edit", "provider.edit"),
    ("x", "Remove", "provider.remove"),
]


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_chat_screen(snap_compare, size):
    assert snap_compare(ScreenHarness(ChatScreen), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_key_create_form(snap_compare, size):
    assert snap_compare(ScreenHarness(KeyCreateForm), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_help_screen(snap_compare, size):
    assert snap_compare(ScreenHarness(lambda: HelpScreen(HELP_ROWS)), terminal_size=size)


# -- the archive's screens, over fixed answers (tests/console/archive_harness.py) --------------------------


def archive_rows() -> list[HistoryRowView]:
    return [
        history_row("req_018f2a3b4c5d0001", started_at=NOW - 5),
        history_row("req_018f2a3b4c5d0002", started_at=NOW - 65, key_name="batch", status=429),
        history_row(
            "req_018f2a3b4c5d0003",
            started_at=NOW - 3600,
            model="gpt-4o-mini",
            provider="openai",
            energy_joules=None,
            latency_s=1.6,
            ttft_s=0.41,
        ),
        history_row("req_018f2a3b4c5d0004", started_at=NOW - 7300, status=502, provider="gpu1"),
        history_row(
            "req_018f2a3b4c5d0005", started_at=NOW - 86400, key_name=None, status=401, model=None, provider=None
        ),
    ]


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_history_screen(snap_compare, size):
    app = ArchiveHarness(FakeArchive(archive_rows()), lambda: HistoryScreen(now=lambda: NOW))
    assert snap_compare(app, terminal_size=size, run_before=settle_archive)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_history_detail_screen(snap_compare, size):
    app = ArchiveHarness(FakeArchive(archive_rows()), lambda: HistoryDetailScreen("req_018f2a3b4c5d0001"))
    assert snap_compare(app, terminal_size=size, run_before=settle_archive)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_usage_screen(snap_compare, size):
    assert snap_compare(ArchiveHarness(FakeArchive([]), UsageScreen), terminal_size=size, run_before=settle_archive)


async def settle_archive(pilot: Pilot[None]) -> None:
    """Let the screen's first request answer and its result render."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()
