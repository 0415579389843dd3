"""The logs screen at 80x24 and 120x40 with a search active: matches highlighted, the current one marked, the
times shown, and the same search showing matching lines only. Fixed lines, no daemon.

After a deliberate visual change: `pytest tests/console/test_logs_snapshots.py --snapshot-update`, then look at
the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from textual.app import App
from textual.pilot import Pilot

from console.live_state import LiveState
from console.screens.logs import LogsScreen
from console.theme_files import builtin_themes_dir
from console.themes import load_theme

SIZES = [(80, 24), (120, 40)]
LOG = [
    "main: build = 11434 (cpu), system_info: n_threads = 2",
    "llama_model_loader: loaded meta data with 24 key-value pairs from /models/tiny-llama.gguf",
    "load_tensors: CPU_Mapped model buffer size = 0.52 MiB",
    "llama_context: n_ctx = 2048, n_batch = 2048, n_ubatch = 512",
    "srv  load_model: initializing slots, n_slots = 2",
    "main: server is listening on http://127.0.0.1:8081 - starting the main loop",
    "srv  update_slots: all slots are idle",
    "slot launch_slot_: id 0 | task 0 | processing task",
    "slot print_timing: id 0 | task 0 | prompt eval time = 1.20 ms / 12 tokens, eval time = 9.81 ms / 64 tokens",
    "slot      release: id 0 | task 0 | stop processing: n_tokens = 76, truncated = 0",
    "srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 200",
    "srv  log_server_r: request: GET /health 127.0.0.1 200",
    "srv  params_from_: error: the request exceeds the available context size (2048 tokens), try increasing it",
    "srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 400",
    "slot launch_slot_: id 1 | task 2 | processing task",
    "slot      release: id 1 | task 2 | stop processing: n_tokens = 31, truncated = 0",
    "srv  log_server_r: request: GET /slots 127.0.0.1 200",
    "srv  update_slots: all slots are idle",
]
LINES = [
    f"2026-12-01T10:{i * 7 // 60:02d}:{i * 7 % 60:02d}.{i * 37 % 1000:03d}000000Z {text}" for i, text in enumerate(LOG)
]


class FixedLogs(LogsScreen):
    async def lines_source(self) -> AsyncGenerator[str, None]:
        for line in LINES:
            yield line
        await asyncio.Event().wait()


class Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.client = None
        self.live = LiveState()

    def on_mount(self) -> None:
        theme = load_theme(builtin_themes_dir() / "corral-dark.yaml")
        self.register_theme(theme)
        self.theme = theme.name
        self.push_screen(FixedLogs("tiny"))


async def searched(pilot: Pilot[None], *keys: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, FixedLogs)
    for _ in range(100):  # the fixed source gives every line within a flush or two
        if screen.view.line_count == len(LINES):
            break
        await pilot.pause(0.05)
    await pilot.press("slash", *"slot", "enter", "t", *keys)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_the_logs_screen_with_a_search_and_times(snap_compare, size):
    assert snap_compare(Host(), terminal_size=size, run_before=searched)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_the_logs_screen_showing_matching_lines_only(snap_compare, size):
    async def matching_only(pilot: Pilot[None]) -> None:
        await searched(pilot, "N", "m")

    assert snap_compare(Host(), terminal_size=size, run_before=matching_only)
