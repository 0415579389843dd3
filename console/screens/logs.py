"""Follow one deployment's llama-server logs, live: search with highlighting, matches only, timestamps, wrap,
how far back to start, and saving or copying what shows.

The lines live in a bounded buffer (`LogBuffer`) that knows which lines match the search; the view (`LogView`)
draws only the rows on screen from it, so a fast log or a new search costs no re-render of the rest.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from console.screens.base import LiveScreen
from console.screens.form_base import FORMS_CSS
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError
from gateway_core.settings import default_data_dir

MAX_LINES = 5000
# Lines are buffered and written in batches: a chatty server must not cost a repaint per line.
FLUSH_INTERVAL_S = 0.1
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z) (.*)$", re.DOTALL)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


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


class LogLine(NamedTuple):
    stamp: str  # "HH:MM:SS.mmm" (UTC) from the engine's timestamp, "" when it gave none
    text: str


def parse_line(raw: str) -> LogLine:
    """A line as the engine sends it with timestamps (`2026-12-01T20:46:36.123456789Z text`), or a bare one."""
    match = _STAMP.match(raw)
    if match is None:
        return LogLine("", _clean(raw))
    fraction = (match.group(3) or "").ljust(3, "0")[:3]
    return LogLine(f"{match.group(2)}.{fraction}", _clean(match.group(4)))


def _clean(text: str) -> str:
    return _CONTROL.sub("�", text.expandtabs())


def matcher(query: str) -> Callable[[str], list[tuple[int, int]]]:
    """Where `query` occurs in a text, as (start, end) spans; case-blind unless the query has a capital."""
    flags = 0 if any(c.isupper() for c in query) else re.IGNORECASE
    pattern = re.compile(re.escape(query), flags)
    return lambda text: [m.span() for m in pattern.finditer(text)] if query else []


class LogBuffer:
    """The newest `max_lines` lines by a running number (`seq`), and the numbers of those that match the query."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self.lines: deque[LogLine] = deque(maxlen=max_lines)
        self.first = 0  # seq of lines[0]
        self.query = ""
        self.spans = matcher("")
        self.matching: list[int] = []  # seqs, ascending

    @property
    def end(self) -> int:
        return self.first + len(self.lines)

    def line(self, seq: int) -> LogLine:
        return self.lines[seq - self.first]

    def append(self, new: list[LogLine]) -> int:
        """Add lines, dropping the oldest past the bound; the count dropped."""
        start = self.end
        dropped = max(0, len(self.lines) + len(new) - (self.lines.maxlen or 0))
        self.lines.extend(new)
        self.first += dropped
        if self.query:
            self.matching += [start + i for i, line in enumerate(new) if self.spans(line.text)]
        if dropped and self.matching and self.matching[0] < self.first:
            del self.matching[: _count_below(self.matching, self.first)]
        return dropped

    def search(self, query: str) -> None:
        self.query, self.spans = query, matcher(query)
        first = self.first
        self.matching = [first + i for i, line in enumerate(self.lines) if query and self.spans(line.text)]

    def clear(self) -> None:
        self.first = self.end
        self.lines.clear()
        self.matching = []


def _count_below(ascending: list[int], bound: int) -> int:
    return bisect.bisect_left(ascending, bound)


class Row(NamedTuple):
    seq: int
    start: int  # the slice of the line's text this row shows (wrapped lines have several rows)
    end: int


class LogView(ScrollView, can_focus=True):
    """The buffer's shown lines (all, or the matching ones), drawn a row at a time, wrapped or not."""

    DEFAULT_CSS = """
    LogView { height: 1fr; background: $surface; color: $text; overflow: scroll; }
    LogView:focus { background-tint: $foreground 5%; }
    LogView > .log-view--stamp { color: $text-muted; }
    LogView > .log-view--match { background: $warning 40%; }
    LogView > .log-view--current { background: $accent; color: $text; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"log-view--stamp", "log-view--match", "log-view--current"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", id="logs.down", tooltip="Scroll down a line", show=False),
        Binding("k", "scroll_up", "Up", id="logs.up", tooltip="Scroll up a line", show=False),
        Binding("g", "scroll_home", "Top", id="logs.top", tooltip="The oldest line", show=False),
        Binding("G", "scroll_end", "Bottom", id="logs.bottom", tooltip="The newest line", show=False),
    ]

    def __init__(self, buffer: LogBuffer, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer = buffer
        self.stamps = False
        self.wrap = False
        self.only_matching = False
        self.current: int | None = None  # the seq of the match n/N moved to
        self._rows: list[Row] = []  # used when wrapping; else rows are the shown seqs themselves
        self._wrap_width = 0
        self._longest = 0

    @property
    def line_count(self) -> int:
        return len(self.buffer.lines)

    def _shown(self) -> list[int] | range:
        buffer = self.buffer
        return buffer.matching if self.only_matching else range(buffer.first, buffer.end)

    def _prefix(self) -> int:
        return 13 if self.stamps else 0  # "HH:MM:SS.mmm "

    def _width_for_text(self) -> int:
        return max(8, self.scrollable_content_region.width - self._prefix())

    def _wrap_rows(self, seqs: list[int] | range) -> list[Row]:
        width, rows = self._wrap_width, []
        for seq in seqs:
            length = len(self.buffer.line(seq).text)
            rows += [Row(seq, start, min(start + width, length)) for start in range(0, max(length, 1), width)]
        return rows

    def relayout(self) -> None:
        """Recompute the rows from the buffer: after a toggle, a new search or a resize, not per line."""
        if self.wrap:
            self._wrap_width = self._width_for_text()
            self._rows = self._wrap_rows(self._shown())
        self._longest = max((len(line.text) for line in self.buffer.lines), default=0)
        self._resize()
        self.refresh()

    def appended(self, new: list[LogLine], dropped: int, *, follow: bool) -> None:
        """The buffer took `new` and dropped its `dropped` oldest lines: add rows for the new ones only. Following
        (and at the bottom), it scrolls to them; else the rows on screen stay where they are."""
        at_end = self.is_vertical_scroll_end
        rows_before = self.virtual_size.height
        start = self.buffer.end - len(new)
        if self.wrap:
            first = self.buffer.first
            keep = next((i for i, row in enumerate(self._rows) if row.seq >= first), len(self._rows))
            del self._rows[:keep]
            shown = (
                [s for s in self.buffer.matching if s >= start] if self.only_matching else range(start, self.buffer.end)
            )
            self._rows += self._wrap_rows(shown)
        if new:
            self._longest = max(self._longest, max(len(line.text) for line in new))
        added = len(self._rows) if self.wrap else len(self._shown())
        self._resize()
        if follow and at_end and not self.is_vertical_scrollbar_grabbed:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif dropped:  # the oldest rows went: move up with the rest so the rows read stay on screen
            removed = rows_before - (added - self._new_rows(start))
            self.scroll_to(y=max(0, self.scroll_offset.y - removed), animate=False, immediate=True)
        self.refresh()

    def _new_rows(self, start: int) -> int:
        if self.wrap:
            return sum(1 for row in self._rows if row.seq >= start)
        return len([s for s in self.buffer.matching if s >= start]) if self.only_matching else self.buffer.end - start

    def _resize(self) -> None:
        height = len(self._rows) if self.wrap else len(self._shown())
        width = self.scrollable_content_region.width if self.wrap else self._longest + self._prefix()
        self.virtual_size = Size(width, height)

    def on_resize(self) -> None:
        if self.wrap and self._width_for_text() != self._wrap_width:
            self.relayout()

    def row_of(self, seq: int) -> int | None:
        """The first row showing line `seq`, if it shows."""
        if self.wrap:
            return next((i for i, row in enumerate(self._rows) if row.seq == seq), None)
        shown = self._shown()
        if isinstance(shown, range):
            return seq - shown.start if seq in shown else None
        index = _count_below(shown, seq)
        return index if index < len(shown) and shown[index] == seq else None

    def row_at(self, y: int) -> Row | None:
        if self.wrap:
            return self._rows[y] if 0 <= y < len(self._rows) else None
        shown = self._shown()
        if not 0 <= y < len(shown):
            return None
        seq = shown[y]
        return Row(seq, 0, len(self.buffer.line(seq).text))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        row = self.row_at(scroll_y + y)
        base = self.rich_style
        if row is None:
            return Strip.blank(width, base)
        line = self.buffer.line(row.seq)
        text = Text(no_wrap=True, style=base)
        if self.stamps:
            stamp = line.stamp if row.start == 0 else ""
            text.append(f"{stamp:<12} ", style=self.get_component_rich_style("log-view--stamp"))
        offset = len(text)
        text.append(line.text[row.start : row.end])
        self._highlight(text, line.text, row, offset)
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _highlight(self, text: Text, whole: str, row: Row, offset: int) -> None:
        if not self.buffer.query:
            return
        name = "log-view--current" if row.seq == self.current else "log-view--match"
        style: Style = self.get_component_rich_style(name)
        for start, end in self.buffer.spans(whole):
            start, end = max(start, row.start), min(end, row.end)
            if start < end:
                text.stylize(style, offset + start - row.start, offset + end - row.start)


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
        index = _count_below(matching, seq)
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
                path = await asyncio.to_thread(write_atomically, place / name, text)
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


def write_atomically(path: Path, text: str) -> Path:
    """Write through a temporary file in the same directory, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path.resolve()
