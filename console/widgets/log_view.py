"""A deployment's log lines on screen: a bounded buffer of them (`LogBuffer`) that keeps, as lines arrive, the
numbers of those matching the search, and the widget (`LogView`) that draws only the rows on screen from it, so a
fast log or a new search costs no re-render of the rest.
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Callable
from typing import ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

MAX_LINES = 5000
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z) (.*)$", re.DOTALL)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


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
