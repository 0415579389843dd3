"""The logs screen's tooling over a known log: search with n/N and highlighting, matches only, timestamps, wrap,
saving and copying what shows, and a bounded buffer. The follow route itself is tested against a real container
in test_logs_follow.py; here the lines are fixed so what the screen does with them can be asserted exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, Static

from console.live_state import LiveState
from console.screens.logs import LogBuffer, LogLine, LogsScreen, LogView, matcher, parse_line
from tests.testbed.waiting import wait_for_async

SIZE = (100, 24)


def stamped(second: int, text: str) -> str:
    return f"2026-12-01T10:00:{second:02d}.123456789Z {text}"


LINES = [stamped(i, f"slot {i} done" if i % 3 else f"error: request {i} failed") for i in range(30)]


class FixedLogs(LogsScreen):
    """The screen over a fixed log: what the daemon would stream, then nothing more (the stream stays open)."""

    def __init__(self, lines: list[str], **kwargs: object) -> None:
        super().__init__("tiny", **kwargs)  # type: ignore[arg-type]  # the screen's own keyword arguments
        self.lines = lines
        self.sources: list[str] = []

    async def lines_source(self) -> AsyncGenerator[str, None]:
        self.sources.append(self.preset)
        for line in self.lines:
            yield line
        await asyncio.Event().wait()  # stays open, as a followed log does, until the screen goes


class Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.client = None
        self.live = LiveState()
        self.copied: list[str] = []

    def copy_to_clipboard(self, text: str) -> None:
        self.copied.append(text)
        super().copy_to_clipboard(text)


def title(app: App[None]) -> str:
    return str(app.screen.query_one("#logs-title", Static).content)


def shown_rows(app: App[None]) -> list[str]:
    view = app.screen.query_one(LogView)
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


async def opened(pilot: Pilot[None], lines: list[str] = LINES, **kwargs: object) -> FixedLogs:
    screen = FixedLogs(lines, **kwargs)
    await pilot.app.push_screen(screen)
    await wait_for_async(lambda: screen.view.line_count == len(lines), "the lines", pause=pilot.pause)
    return screen


def test_a_stamped_line_is_split_into_its_time_and_text():
    assert parse_line("2026-12-01T10:00:05.5Z main: server is listening") == LogLine(
        "10:00:05.500", "main: server is listening"
    )
    assert parse_line("no stamp here\tat all") == LogLine("", "no stamp here   at all")


def test_search_is_case_blind_unless_the_query_has_a_capital():
    assert matcher("error")("Error and ERROR") == [(0, 5), (10, 15)]
    assert matcher("Error")("Error and ERROR") == [(0, 5)]


def test_the_buffer_keeps_the_newest_lines_and_only_their_matches():
    buffer = LogBuffer(max_lines=5)
    buffer.search("x")
    buffer.append([LogLine("", t) for t in ["x1", "a", "x2", "b"]])
    assert buffer.matching == [0, 2]
    dropped = buffer.append([LogLine("", t) for t in ["x3", "c", "d"]])
    assert dropped == 2
    assert [line.text for line in buffer.lines] == ["x2", "b", "x3", "c", "d"]
    assert buffer.matching == [2, 4]
    assert buffer.line(4).text == "x3"


@pytest.mark.asyncio
async def test_slash_highlights_matches_as_you_type_and_n_and_shift_n_move_between_them():
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        await pilot.press("slash", *"error")
        assert screen.query_one("#logs-search", Input).has_focus
        assert "/error: 10 lines match" in title(app)
        await pilot.press("enter")
        assert screen.view.has_focus
        assert screen.view.current == 27  # following: the newest match
        assert "paused" in title(app)
        assert "/error: 10 of 10" in title(app)
        await pilot.press("n")  # wraps around to the oldest
        assert screen.view.current == 0
        assert "1 of 10" in title(app)
        await pilot.press("N", "N")
        assert screen.view.current == 24
        assert "9 of 10" in title(app)
        row = next(y for y, text in enumerate(shown_rows(app)) if "request 24 " in text)
        strip = screen.view.render_line(row)
        current_style = screen.view.get_component_rich_style("log-view--current")
        highlighted = "".join(seg.text for seg in strip if seg.style and seg.style.bgcolor == current_style.bgcolor)
        assert highlighted == "error"


@pytest.mark.asyncio
async def test_matches_only_shows_the_matching_lines_and_esc_clears_the_search():
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        await pilot.press("m")  # nothing to match yet: it says so and changes nothing
        assert not screen.view.only_matching
        await pilot.press("slash", *"error", "enter", "m")
        rows = [row for row in shown_rows(app) if row]
        assert len(rows) == 10
        assert all("error" in row for row in rows)
        assert "matches only" in title(app)
        await pilot.press("escape")
        assert not screen.buffer.query
        assert not screen.view.only_matching
        assert len([row for row in shown_rows(app) if row]) > 10
        await pilot.press("escape")
        assert not isinstance(app.screen, LogsScreen)


@pytest.mark.asyncio
async def test_t_shows_each_lines_time_and_w_wraps_long_lines():
    app = Host()
    long = stamped(1, "x" * 150 + " tail-end")
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, [stamped(0, "first line"), long])
        assert shown_rows(app)[0] == "first line"
        await pilot.press("t")
        assert shown_rows(app)[0] == "10:00:00.123 first line"
        assert "tail-end" not in "".join(shown_rows(app))  # off to the right, scrolled to sideways
        await pilot.press("w")
        rows = shown_rows(app)
        assert "wrap" in title(app)
        assert rows[1].startswith("10:00:01.123 xxx")
        assert rows[2].startswith(" " * 13 + "x")
        assert any(row.rstrip().endswith("tail-end") for row in rows)
        assert screen.view.virtual_size.height == 3


@pytest.mark.asyncio
async def test_a_preset_follows_again_from_its_start():
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        assert "last 1,000 lines" in title(app)
        await pilot.press("4")
        await wait_for_async(lambda: screen.sources == ["1000", "15m"], "the second follow", pause=pilot.pause)
        await wait_for_async(lambda: screen.view.line_count == len(LINES), "the lines again", pause=pilot.pause)
        assert "last 15 minutes" in title(app)


@pytest.mark.asyncio
async def test_ctrl_s_saves_the_shown_lines_atomically_and_says_where(tmp_path: Path):
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, save_dir=tmp_path, now=lambda: 1_764_583_200.0)
        await pilot.press("slash", *"error", "enter", "m", "t", "ctrl+s")
        saved = tmp_path / "corral-logs-tiny-20251201T100000Z.log"
        await wait_for_async(saved.exists, "the saved file", pause=pilot.pause)
        lines = saved.read_text().splitlines()
        assert len(lines) == 10
        assert lines[0] == "10:00:00.123 error: request 0 failed"
        assert [p.name for p in tmp_path.iterdir()] == [saved.name]  # noqa: ASYNC240  # no temporary file left
        assert any(str(saved) in str(n.message) for n in app._notifications)


@pytest.mark.asyncio
async def test_a_save_that_cannot_write_says_why_and_what_to_do(tmp_path: Path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, save_dir=blocked)
        await pilot.press("ctrl+s")
        await wait_for_async(
            lambda: any("could not save" in str(n.message) for n in app._notifications), "the error", pause=pilot.pause
        )


@pytest.mark.asyncio
async def test_c_copies_the_shown_lines():
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("slash", *"request 1", "enter", "m", "c")
        assert app.copied == ["error: request 12 failed\nerror: request 15 failed\nerror: request 18 failed\n"]


@pytest.mark.asyncio
async def test_the_buffer_is_bounded_while_the_search_follows_new_lines():
    app = Host()
    lines = [stamped(i % 60, f"line {i}" + (" error" if i % 10 == 0 else "")) for i in range(500)]
    async with app.run_test(size=SIZE) as pilot:
        screen = FixedLogs(lines, max_lines=100)
        screen.buffer.search("error")
        await app.push_screen(screen)
        await wait_for_async(
            lambda: screen.buffer.lines and screen.buffer.lines[-1].text == "line 499",
            "the last line",
            pause=pilot.pause,
        )
        assert screen.view.line_count == 100
        assert next(screen.buffer.line(seq).text for seq in screen.buffer.matching) == "line 400 error"
        assert len(screen.buffer.matching) == 10


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "keys", [("f",), ("f", "w"), ("slash", *"line", "enter", "m")], ids=["plain", "wrapped", "matching"]
)
async def test_paused_the_rows_read_stay_on_screen_while_the_oldest_lines_are_dropped(keys: tuple[str, ...]):
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, [stamped(i % 60, f"line {i}") for i in range(100)], max_lines=100)
        view = screen.view
        await pilot.press(*keys)  # paused (a search pauses too)
        assert not screen.following
        view.scroll_to(y=40, animate=False, immediate=True)
        await pilot.pause()
        top = shown_rows(app)[0]
        assert top == "line 40"
        screen._pending = [stamped(0, f"new line {i}") for i in range(10)]  # as the follow worker adds them
        screen.flush()
        await pilot.pause()
        assert screen.buffer.first == 10  # the ten oldest went
        assert shown_rows(app)[0] == top


@pytest.mark.asyncio
async def test_showing_matches_only_the_rows_follow_the_search_as_it_is_typed():
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("slash", *"error", "enter", "m", "slash", "backspace", "backspace", "backspace")
        assert [row for row in shown_rows(app) if row] == [row for row in shown_rows(app) if "er" in row]
        await pilot.press(*"ror: request 2")
        assert [row for row in shown_rows(app) if row] == ["error: request 21 failed", "error: request 24 failed",
                                                            "error: request 27 failed"]  # fmt: skip
