"""What the chat, key and help screens look like at 80x24 and 120x40, with fixed data and no daemon.

After a deliberate visual change: `pytest tests/console/test_screen_snapshots.py --snapshot-update`,
then look at the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App
from textual.screen import Screen

from console.live_state import LiveState
from console.screens.chat import ChatScreen
from console.screens.help import HelpScreen
from console.screens.key_forms import KeyCreateForm
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from tests.console.dashboard_data import provider, snapshot

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
    ("k", "New key", "key.create"),
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
