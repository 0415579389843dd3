"""What the GPU history, provider history and GPU processes screens look like at 80x24 and 120x40, over fixed
answers in the contracts' shapes (no daemon: the Pilot tests in test_gpu_history_console.py use a real one).

After a deliberate visual change: `pytest tests/console/test_gpu_history_snapshots.py --snapshot-update`, then
look at the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen

from console.live_state import LiveState
from console.screens.gpu_history import GpuHistoryScreen, ProviderHistoryScreen
from console.screens.processes import ProcessesScreen
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from gateway_core.contracts.views import (
    GpuHistoryView,
    GpuSeriesView,
    ProcessesView,
    ProviderHistoryView,
)
from tests.console.dashboard_data import NOW, gpu, gpus, snapshot

SIZES = [(80, 24), (120, 40)]
GIB = 1024**3
STARTED = 30  # buckets before corral-core started: no readings there


def wave(points: int, base: float, swing: float, phase: float) -> list[float | None]:
    return [
        None if index < STARTED else round(base + swing * math.sin(index / 9 + phase), 1) for index in range(points)
    ]


def gpu_series(index: int, points: int) -> GpuSeriesView:
    memory = wave(points, 40 + 10 * index, 8, index)
    return {
        "index": index,
        "uuid": f"GPU-{index}",
        "name": "NVIDIA H100 80GB HBM3",
        "memory_total_bytes": 80 * GIB,
        "utilization_percent": wave(points, 55 + 15 * index, 30, index * 2),
        "memory_used_bytes": [None if m is None else int(m / 100 * 80 * GIB) for m in memory],
        "power_draw_watts": wave(points, 350 + 60 * index, 150, index),
        "temperature_c": wave(points, 55 + 5 * index, 6, index),
    }


class FixedTelemetry:
    """gpu_history(), provider_history() and gpu_processes() as CorralClient has them, over fixed data."""

    async def gpu_history(self, minutes: int = 15, points: int = 120) -> GpuHistoryView:
        return {
            "minutes": minutes,
            "points": points,
            "step_s": minutes * 60 / points,
            "end": NOW,
            "interval_s": 1.0,
            "devices": [gpu_series(index, points) for index in range(2)],
        }

    async def provider_history(self, minutes: int = 15, points: int = 120) -> ProviderHistoryView:
        return {
            "minutes": minutes,
            "points": points,
            "step_s": minutes * 60 / points,
            "end": NOW,
            "providers": [
                {"name": "gpu0", "requests_per_s": wave(points, 4, 3, 0), "tokens_per_s": wave(points, 180, 120, 0)},
                {"name": "cloud", "requests_per_s": wave(points, 1, 1, 2), "tokens_per_s": wave(points, 40, 30, 2)},
            ],
        }

    async def gpu_processes(self) -> ProcessesView:
        return {
            "host": {
                "cpu_percent": 23.0,
                "cpu_count": 16,
                "memory_total_bytes": 128 * GIB,
                "memory_used_bytes": 41 * GIB,
                "swap_total_bytes": 0,
                "swap_used_bytes": 0,
                "load_average": [1.5, 1.25, 0.75],
            },
            "processes": [
                {
                    "gpu_index": 0,
                    "pid": 48211,
                    "user": "root",
                    "gpu_memory_bytes": 9 * GIB,
                    "sm_percent": 71,
                    "cpu_percent": 98.0,
                    "rss_bytes": 2 * GIB,
                    "elapsed_s": 7384.0,
                    "command": "/app/llama-server -m /models/qwen2.5-7b-q4_k_m.gguf --port 8081 -ngl 99",
                    "owner_kind": "container",
                    "owner": "corral-qwen",
                },
                {
                    "gpu_index": 1,
                    "pid": 51007,
                    "user": "corral",
                    "gpu_memory_bytes": 21 * GIB,
                    "sm_percent": 12,
                    "cpu_percent": 4.0,
                    "rss_bytes": 900 * 1024**2,
                    "elapsed_s": 95.0,
                    "command": "/usr/local/bin/llama-server --model /srv/models/llama-3-8b.gguf --port 8090",
                    "owner_kind": "unit",
                    "owner": "corral-llama3.service",
                },
            ],
            "sm_note": None,
        }


class TelemetryHarness(App[None]):
    """The ConsoleHost protocol (client, live) over FixedTelemetry, its live state holding two GPUs (the processes
    screen reads their state), showing one screen."""

    def __init__(self, make_screen: Any) -> None:
        super().__init__()
        self.live = LiveState()
        self.client = FixedTelemetry()
        self.make_screen = make_screen

    def on_mount(self) -> None:
        theme = load_theme(builtin_themes_dir() / "corral-dark.yaml")
        self.register_theme(theme)
        self.theme = theme.name
        self.live.apply("snapshot", snapshot(gpu_data=gpus(gpu(0), gpu(1))))
        screen: Screen[Any] = self.make_screen()
        self.push_screen(screen)


def harness(make_screen: Any) -> TelemetryHarness:
    return TelemetryHarness(make_screen)


async def settle(pilot: Pilot[None]) -> None:
    """Let the screen's first answer come and its charts draw."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_gpu_history_screen(snap_compare, size):
    assert snap_compare(harness(GpuHistoryScreen), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_provider_history_screen(snap_compare, size):
    assert snap_compare(harness(ProviderHistoryScreen), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_gpu_processes_screen(snap_compare, size):
    assert snap_compare(harness(lambda: ProcessesScreen(lambda: NOW)), terminal_size=size, run_before=settle)
