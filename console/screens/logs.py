"""The logs screen: follow one deployment's llama-server log live from corral-core, and search it with
highlighting, show matches only, times or wrapped lines, pick how far back to start, and save or copy what shows.

The lines and their drawing are console/widgets/log_view.py's; this screen feeds them and acts on the keys.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, NamedTuple

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from console.screens.base import LiveScreen
from console.screens.form_base import FORMS_CSS
from console.widgets.key_hints import KeyHints
from console.widgets.log_view import MAX_LINES, LogBuffer, LogLine, LogView, matcher, parse_line
from gateway_core.client import CorralError
from gateway_core.settings import default_data_dir
from gateway_core.store.atomic_file import write_text_atomically

# The line model and the view lived here first: what imported them from this module still finds them.
__all__ = [
    "DEFAULT_PRESET",
    "MAX_LINES",
    "PRESETS",
    "LogBuffer",
    "LogLine",
    "LogView",
    "LogsScreen",
    "Preset",
    "matcher",
    "parse_line",
]

# Lines are buffered and written in batches: a chatty server must not cost a repaint per line.
FLUSH_INTERVAL_S = 0.1


class Preset(NamedTuple):
    label: str
    tail: int | None  # lines; None: every line since `since`
    since: str | None  # how far back, as corral-core reads it (15m, 1h)


PRESETS: dict[str, Preset] = {
    "100": Preset("last 100 lines", 100, None),
    "1000": Preset("last 1,000 lines", 1000, None),
    "1m": Preset("last minute", None, "1m"),
    "15m": Preset("last 15 minutes", None, "15m"),
    "1h": Preset("last hour", None, "1h"),
}
DEFAULT_PRESET = "1000"


class LogsScreen(LiveScreen):
    """`client.follow_logs(deployment)` into a LogView; it scrolls with new lines unless you scrolled up or paused."""

    CSS_PATH: ClassVar[str] = FORMS_CSS
    DEFAULT_CSS = """
    LogsScreen #logs-search { dock: bottom; display: none; }
    LogsScreen #logs-search.-open { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", id="logs.search", tooltip="Find text in the log as you type"),
        Binding("n", "next_match", "Next/prev", id="logs.next", tooltip="The next line that matches (N: previous)"),
        Binding("N", "previous_match", "Prev", id="logs.previous", tooltip="The previous matching line", show=False),
        Binding("m", "toggle_matching", "Matches", id="logs.matching", tooltip="Show only matching lines"),
        Binding("f", "toggle_follow", "Follow", id="logs.follow", tooltip="Keep scrolling to new lines, or stop"),
        Binding("t", "toggle_stamps", "Times", id="logs.timestamps", tooltip="Show each line's time (UTC)"),
        Binding("w", "toggle_wrap", "Wrap", id="logs.wrap", tooltip="Wrap long lines, or scroll sideways"),
        Binding("1", "preset('100')", "100", id="logs.last_100", tooltip="Start from the last 100 lines", show=False),
        Binding(
            "2", "preset('1000')", "1k", id="logs.last_1000", tooltip="Start from the last 1,000 lines", show=False
        ),
        Binding("3", "preset('1m')", "1m", id="logs.last_minute", tooltip="Lines from the last minute on", show=False),
        Binding(
            "4", "preset('15m')", "15m", id="logs.last_15m", tooltip="Lines from the last 15 minutes on", show=False
        ),
        Binding("5", "preset('1h')", "1h", id="logs.last_hour", tooltip="Lines from the last hour on", show=False),
        Binding("ctrl+s", "save", "Save", id="logs.save", tooltip="Save the shown lines to a file"),
        Binding("c", "copy", "Copy", id="logs.copy", tooltip="Copy the shown lines to the clipboard (OSC 52)"),
        Binding("escape", "back", "Back", id="logs.back", tooltip="Clear the search, or go back"),
    ]

    following: reactive[bool] = reactive(True, init=False)
    stopped: reactive[str] = reactive("", init=False)

    @dataclass
    class Stopped(Message):
        reason: str

    def __init__(
        self,
        deployment: str,
        *,
        max_lines: int = MAX_LINES,
        preset: str = DEFAULT_PRESET,
        save_dir: Path | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.deployment = deployment
        self.buffer = LogBuffer(max_lines)
        self.preset = preset
        self.save_dir = save_dir  # None: the current directory, else the data dir when that cannot be written
        self.now = now
        self._pending: list[str] = []
        self._max_lines = max_lines

    def compose(self) -> ComposeResult:
        yield Static("", id="logs-title")
        yield LogView(self.buffer, id="log")
        yield Input(placeholder="search: type, Enter to keep it, Esc to clear", id="logs-search")
        yield KeyHints()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self._show_title()
        self.view.focus()
        self.set_interval(FLUSH_INTERVAL_S, self.flush)
        self.follow()

    def lines_source(self) -> AsyncGenerator[str, None]:
        """The followed lines, stamped, from the preset's start on (tests give a fixed source instead)."""
        preset = PRESETS[self.preset]
        return self.host.client.follow_logs(self.deployment, tail=preset.tail, since=preset.since, timestamps=True)

    @work(exclusive=True, group="logs-follow")
    async def follow(self) -> None:
        try:
            async with contextlib.aclosing(self.lines_source()) as source:
                async for line in source:
                    self._pending.append(line)
                    if len(self._pending) > self._max_lines:
                        del self._pending[: -self._max_lines]
        except CorralError as error:
            self.post_message(self.Stopped(f"cannot follow: {error.message}"))
            return
        self.post_message(self.Stopped("the log stream ended (the container stopped or was removed)"))

    def flush(self) -> None:
        if not self._pending:
            return
        new = [parse_line(raw) for raw in self._pending]
        self._pending = []
        dropped = self.buffer.append(new)
        self.view.appended(new, dropped, follow=self.following)
        if self.buffer.query:
            self._show_title()

    def on_logs_screen_stopped(self, event: LogsScreen.Stopped) -> None:
        self.flush()
        self.stopped = event.reason

    def watch_following(self, following: bool) -> None:
        if following:
            self.view.scroll_end(animate=False)
        self._show_title()

    def watch_stopped(self) -> None:
        self._show_title()

    def _show_title(self) -> None:
        title = self.query_one("#logs-title", Static)
        view = self.view
        state = "following" if self.following else "paused (f to follow)"
        parts = [f"logs of {self.deployment}: {self.stopped or state}", PRESETS[self.preset].label]
        if self.buffer.query:
            parts.append(f"/{self.buffer.query}: {self._match_position()}")
        parts += [word for on_, word in ((view.only_matching, "matches only"), (view.wrap, "wrap")) if on_]
        title.update(Text(" · ".join(parts)))
        title.set_class(not self.following or bool(self.stopped), "-paused")

    def _match_position(self) -> str:
        matching, current = self.buffer.matching, self.view.current
        if not matching:
            return "no line matches"
        lines = "line matches" if len(matching) == 1 else "lines match"
        if current is None or current not in matching:
            return f"{len(matching)} {lines}"
        return f"{matching.index(current) + 1} of {len(matching)}"

    # -- search --------------------------------------------------------------------------------------

    def action_search(self) -> None:
        field = self.query_one("#logs-search", Input)
        field.add_class("-open")
        field.value = self.buffer.query
        field.focus()

    @on(Input.Changed, "#logs-search")
    def _typed(self, event: Input.Changed) -> None:
        self.buffer.search(event.value)
        self.view.current = None
        self._relayout_keeping_place()  # showing matches only, the rows change with each keystroke

    @on(Input.Submitted, "#logs-search")
    def _submitted(self) -> None:
        self._close_search()
        if self.buffer.matching:
            self._go_to(self.buffer.matching[-1] if self.following else self._match_after(self._top_seq(), 1))

    def _close_search(self) -> None:
        self.query_one("#logs-search", Input).remove_class("-open")
        self.view.focus()

    def _top_seq(self) -> int:
        row = self.view.row_at(self.view.scroll_offset.y)
        return row.seq if row is not None else self.buffer.first

    def _match_after(self, seq: int, step: int) -> int:
        """The next matching seq after `seq` (step 1) or before it (-1), wrapping around."""
        matching = self.buffer.matching
        index = bisect.bisect_left(matching, seq)
        if step > 0:
            index = index + 1 if index < len(matching) and matching[index] == seq else index
            return matching[index % len(matching)]
        return matching[(index - 1) % len(matching)]

    def _go_to(self, seq: int) -> None:
        self.following = False  # a match stays on screen while lines keep coming
        view = self.view
        view.current = seq
        row = view.row_of(seq)
        if row is not None:
            view.scroll_to(y=max(0, row - view.scrollable_content_region.height // 2), animate=False)
        view.refresh()
        self._show_title()

    def action_next_match(self) -> None:
        self._step(1)

    def action_previous_match(self) -> None:
        self._step(-1)

    def _step(self, step: int) -> None:
        if not self.buffer.query:
            self.notify("no search: press / and type what to find", severity="warning")
        elif not self.buffer.matching:
            self.notify(f"no line matches '{self.buffer.query}'", severity="warning")
        else:
            self._go_to(
                self._match_after(self.view.current if self.view.current is not None else self._top_seq(), step)
            )

    def action_toggle_matching(self) -> None:
        if not self.buffer.query and not self.view.only_matching:
            self.notify("matches only needs a search: press / first", severity="warning")
            return
        self.view.only_matching = not self.view.only_matching
        self._relayout_keeping_place()

    # -- toggles and presets -------------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        self.following = not self.following

    def action_toggle_stamps(self) -> None:
        self.view.stamps = not self.view.stamps
        self._relayout_keeping_place()

    def action_toggle_wrap(self) -> None:
        self.view.wrap = not self.view.wrap
        self._relayout_keeping_place()

    def _relayout_keeping_place(self) -> None:
        view = self.view
        anchor = view.current if view.current is not None else self._top_seq()
        view.relayout()
        if self.following:
            view.scroll_end(animate=False, immediate=True)
        elif (row := view.row_of(anchor)) is not None:
            view.scroll_to(y=row, animate=False, immediate=True)
        self._show_title()

    def action_preset(self, preset: str) -> None:
        """Follow again from another start: the buffer is read afresh from corral-core."""
        self.preset = preset
        self._pending = []
        self.buffer.clear()
        self.view.current = None
        self.view.relayout()
        self.stopped = ""
        self.following = True
        self._show_title()
        self.follow()

    # -- save and copy -------------------------------------------------------------------------------

    def shown_text(self) -> str:
        view, buffer = self.view, self.buffer
        seqs = buffer.matching if view.only_matching else range(buffer.first, buffer.end)
        lines = (buffer.line(seq) for seq in seqs)
        return "".join(f"{line.stamp} {line.text}\n" if view.stamps else f"{line.text}\n" for line in lines)

    def action_copy(self) -> None:
        text = self.shown_text()
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {text.count(chr(10))} lines to the clipboard")

    def action_save(self) -> None:
        self.save(self.shown_text())

    @work(exclusive=True, group="logs-save")
    async def save(self, text: str) -> None:
        stamp = datetime.fromtimestamp(self.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"corral-logs-{self.deployment}-{stamp}.log"
        places = [self.save_dir] if self.save_dir is not None else [Path.cwd(), default_data_dir()]
        failures: list[str] = []
        for place in places:
            try:
                path = await asyncio.to_thread(write_text_atomically, place / name, text)
            except OSError as error:
                failures.append(f"{place}: {error.strerror or error}")
                continue
            self.notify(f"saved {text.count(chr(10))} lines to {path}", title="log saved")
            return
        self.notify(
            f"could not save the log ({'; '.join(failures)}): free some space or run the console from a "
            "directory you can write to",
            severity="error",
        )

    def action_back(self) -> None:
        field = self.query_one("#logs-search", Input)
        if field.has_class("-open") or self.buffer.query:
            field.value = ""  # its Changed message clears the search
            self.buffer.search("")
            self.view.only_matching = False
            self.view.current = None
            self._close_search()
            self._relayout_keeping_place()
            return
        self.dismiss()
