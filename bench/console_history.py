"""The console's History screen on a month of archived rows: the time from F4 to the first frame showing a page.

The real CorralApp runs headless in this process against a real corral-core whose data dir holds the month file
(built by `bench.archive_scale.build_month`). Each run is timed from the key to the first frame drawn after the
page arrived (Textual's post-display hook): the first F4 composes the screen and applies its stylesheet; later
ones (F2 then F4 again, which searches afresh, and ctrl+r) only fetch and draw a page. Target: 300 ms.
Then the Usage screen (F5, 7 days by key), 90 days per day, and its heaviest view, 90 days per hour, timed the same
way.

    python -m bench.console_history DATA_DIR     # a data dir whose archive/ already holds the month
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from console.app import CorralApp
from console.screens.history import HistoryScreen
from console.screens.usage import UsageScreen
from tests.testbed import CorralDaemon

TARGET_MS = 300.0
PAGE_TIMEOUT_S = 30.0
WARM_RUNS = 5


class TimedConsole(CorralApp):
    """CorralApp, noting when a frame first shows the History screen's current search."""

    def __init__(self, socket_path: Path, data_dir: Path) -> None:
        super().__init__(socket_path, data_dir, autostart=False)
        self.shown_at: dict[int, float] = {}  # search number -> the first frame's time
        self.usage_at: dict[tuple[str, str, str], float] = {}  # what the Usage screen asked -> the first frame's

    def post_display_hook(self) -> None:
        screen = self.screen
        if isinstance(screen, HistoryScreen) and screen.shown_search and screen.shown_search == screen.searches:
            self.shown_at.setdefault(screen.shown_search, time.perf_counter())
        if isinstance(screen, UsageScreen) and screen.shown_for is not None and screen.shown_for == screen.asked:
            self.usage_at.setdefault(screen.shown_for, time.perf_counter())


async def _time_key(app: TimedConsole, press: Any, key: str) -> float:
    """Milliseconds from pressing `key` to the first frame showing the page of the search it started."""
    started = time.perf_counter()
    await press(key)
    deadline = started + PAGE_TIMEOUT_S
    while True:
        screen = app.screen
        if isinstance(screen, HistoryScreen) and screen.searches in app.shown_at and not screen.loading:
            return (app.shown_at[screen.searches] - started) * 1000
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no page of the History screen within {PAGE_TIMEOUT_S:g} s after {key}")
        await asyncio.sleep(0.002)


async def _time_usage(app: TimedConsole, press: Any, key: str) -> float:
    """Milliseconds from pressing `key` to the first frame of the Usage screen showing what it then asked for."""
    started = time.perf_counter()
    await press(key)
    deadline = started + PAGE_TIMEOUT_S
    while True:
        screen = app.screen
        if isinstance(screen, UsageScreen) and screen.asked in app.usage_at:
            return (app.usage_at.pop(screen.asked) - started) * 1000
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no usage chart within {PAGE_TIMEOUT_S:g} s after {key}")
        await asyncio.sleep(0.002)


async def _measure(socket_path: Path, data_dir: Path, warm_runs: int) -> dict[str, Any]:
    app = TimedConsole(socket_path, data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.connected:
            await pilot.pause(0.05)
        first = await _time_key(app, pilot.press, "f4")
        rows = app.screen.query_one("#history-table").row_count  # type: ignore[attr-defined]
        again = []
        for run in range(warm_runs):
            if run % 2:
                again.append(await _time_key(app, pilot.press, "ctrl+r"))
            else:
                await pilot.press("f2")
                again.append(await _time_key(app, pilot.press, "f4"))
        usage_7d = await _time_usage(app, pilot.press, "f5")
        await pilot.press("t")  # 30d
        usage_90d = await _time_usage(app, pilot.press, "t")  # 90d, per day (the range's bucket), from the rollups
        usage_90d_by_hour = await _time_usage(app, pilot.press, "b")
    return {
        "first_open_ms": round(first, 1),
        "reopen_ms": [round(ms, 1) for ms in again],
        "reopen_median_ms": round(statistics.median(again), 1) if again else None,
        "rows_on_first_page": rows,
        "target_ms": TARGET_MS,
        "within_target": first <= TARGET_MS,
        "usage_first_open_ms": round(usage_7d, 1),  # F5: compose, then 7 days by key per day
        "usage_90d_ms": round(usage_90d, 1),  # 90 days by key per day
        "usage_90d_hourly_ms": round(usage_90d_by_hour, 1),  # 90 days by key, 2,160 hourly buckets per key
    }


def measure_history_open(data_dir: Path, warm_runs: int = WARM_RUNS) -> dict[str, Any]:
    """Start corral-core on `data_dir` (its archive/ holds the month), open the History screen, stop the daemon."""
    daemon = CorralDaemon(data_dir).start()
    try:
        return asyncio.run(_measure(daemon.socket_path, data_dir, warm_runs))
    finally:
        daemon.stop()


def run(rows: int, workdir: Path, warm_runs: int = WARM_RUNS) -> dict[str, Any]:
    """Build a month of `rows` through the archive's writer, then time the History screen's first page on it."""
    from bench.archive_scale import build_month  # engineer A's builder; loaded only when a month is built here

    data_dir = workdir / "corral"
    build_month(data_dir / "archive", rows)
    return {"rows": rows, **measure_history_open(data_dir, warm_runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--runs", type=int, default=WARM_RUNS)
    args = parser.parse_args()
    print(json.dumps(measure_history_open(args.data_dir, args.runs), indent=2))


if __name__ == "__main__":
    main()
