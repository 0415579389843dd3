"""Work that would stall a key waits for a quiet keyboard: full garbage collections (which still come at least
once a minute) and building the chat screen."""

from __future__ import annotations

import gc
import itertools
import warnings

import pytest

import console.app
from console.app import CorralApp
from console.collector import FULL_EVERY_S, MAX_DEFER_S, NEVER, QUIET_S, QuietCollector
from console.screens.chat import ChatScreen
from tests.testbed.waiting import wait_for_async


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def collector_on(clock: Clock) -> tuple[QuietCollector, list[float]]:
    runs: list[float] = []
    return QuietCollector(clock, collect=lambda: runs.append(clock.now)), runs


def test_a_full_collection_waits_until_the_keyboard_has_been_quiet():
    clock = Clock()
    collector, runs = collector_on(clock)
    clock.now += FULL_EVERY_S
    collector.input_seen()

    assert not collector.tick(), "a key just came"
    clock.now += QUIET_S
    assert collector.tick()
    assert runs == [clock.now]


def test_an_idle_console_collects_at_most_every_full_every_s():
    clock = Clock()
    collector, runs = collector_on(clock)
    for _ in range(int(3 * FULL_EVERY_S)):
        clock.now += 1
        collector.tick()

    assert len(runs) == 3
    assert [b - a for a, b in itertools.pairwise(runs)] == [FULL_EVERY_S, FULL_EVERY_S]


def test_typing_without_a_pause_still_gets_a_full_collection_each_max_defer_s():
    clock = Clock()
    collector, runs = collector_on(clock)
    for _ in range(int(2 * MAX_DEFER_S)):
        clock.now += 1
        collector.input_seen()
        collector.tick()

    assert len(runs) == 2
    assert runs[0] - 1000.0 == MAX_DEFER_S


def test_start_takes_full_collections_from_cpython_and_stop_gives_them_back():
    # start() runs a full collection: garbage an earlier test on this worker left (an unclosed socket) would be
    # reported here, as this test's ResourceWarning. Collect it first; CORRAL_LEAK_CHECK=1 blames the leaker.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    before = gc.get_threshold()
    collector = QuietCollector()
    collector.start()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
        assert gc.get_freeze_count() > 0, "what exists at start is left out of later scans"
    finally:
        collector.stop()

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.asyncio
async def test_the_console_holds_full_collections_while_it_runs_and_counts_keys_as_input(tmp_path):
    before = gc.get_threshold()
    app = CorralApp(tmp_path / "nobody.sock", tmp_path / "data", autostart=False)

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_async(
            lambda: gc.get_threshold()[2] == NEVER, "gen-2 collections to be off", 5, pause=pilot.pause
        )
        typed_before = app.collector.last_input
        await pilot.press("tab")

        assert app.collector.last_input > typed_before

    assert gc.get_threshold() == before, "a console that has quit leaves the interpreter as it found it"


@pytest.mark.asyncio
async def test_the_chat_screen_is_built_behind_a_quiet_dashboard_so_the_first_f3_does_not_wait(tmp_path, monkeypatch):
    mounted: list[str] = []
    real_on_mount = ChatScreen.on_mount
    monkeypatch.setattr(
        ChatScreen, "on_mount", lambda screen: (mounted.append(screen.app.current_mode), real_on_mount(screen))
    )
    monkeypatch.setattr(console.app, "WARM_CHAT_AFTER_S", 0.1)
    monkeypatch.setattr(console.app, "QUIET_S", 0.0)
    app = CorralApp(tmp_path / "nobody.sock", tmp_path / "data", autostart=False)

    async with app.run_test(size=(80, 24)) as pilot:
        focused = app.screen.focused
        await wait_for_async(lambda: mounted, "the chat screen to be built", 5, pause=pilot.pause)

        assert app.current_mode == "dashboard", "the operator saw nothing move"
        assert app.screen.focused is focused
        await pilot.press("f3")
        await wait_for_async(lambda: isinstance(app.screen, ChatScreen), "F3 to show the chat", 5, pause=pilot.pause)
        assert len(mounted) == 1, "F3 showed the screen built before"
