"""A live table on Textual's Line API: rows are added, changed and removed by key, never cleared and refilled,
and a row is drawn again only when its cells change.

Textual's DataTable drops every cached cell on any `update_cell`, so a dashboard whose requests move every second
re-rendered every visible cell of every table through Rich on each redraw (about 60 ms at the issue's scale on a
2-core box, which is what a keypress waited behind). Here each row's drawing is kept as one Strip until that row
changes, the header is drawn once, and a redraw that changes three rows repaints three lines.

Filtering (`/`) and sorting (`o`, `O`) only choose which of those kept rows show, and in what order: a filter
keystroke over 500 rows compares 500 cached lower-case lines and draws none but the lines now in view.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, Static

from console.read_only import refuses

Cell = str | Text
Row = tuple[Cell, ...]
Clock = Callable[[], float]
PADDING = 1  # blank cells either side of each column, as in Textual's DataTable
HEADER_LINES = 1
NO_STYLE = Style.null()
SORT_ARROWS = {False: "▲", True: "▼"}  # ascending, descending
NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
# The cursor and scrolling keys: not offered in the command palette (they act on where the cursor is).
CURSOR_BINDING_IDS = frozenset(
    {"table.up", "table.down", "table.page_up", "table.page_down", "table.first", "table.last"}
    | {"table.left", "table.right"}
)


class LiveTable(ScrollView, can_focus=True):
    """A keyed table that follows a collection: `sync` adds, updates and removes rows by key.

    Subclasses declare COLUMNS as (column key, label, width) and turn their domain objects into cells (plain
    strings, or Rich Text for a coloured level). Up/down (k/j), page up/down, home/end (g/G) move a row cursor,
    which shows while the table has focus; left/right (h/l) scroll a column at a time; a click selects a row.
    `/` filters the rows as you type, `o` sorts by the next column and `O` reverses the sort; the cursor stays on
    its row through all three.
    """

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    SORTED: ClassVar[bool] = True  # re-sort by the first column when rows are added
    IN_GIVEN_ORDER: ClassVar[bool] = False  # rows in the order `sync` is given them (a newest-first list)
    FILTERABLE: ClassVar[bool] = True  # False where the screen's own `/` searches more than the rows loaded
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header",
        "live-table--cursor",
        "level--ok",
        "level--warn",
        "level--bad",
        "level--muted",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", id="table.up", tooltip="The row above", show=False),
        Binding("down,j", "cursor_down", "Down", id="table.down", tooltip="The row below", show=False),
        Binding("pageup", "cursor_page_up", "Page up", id="table.page_up", tooltip="A screenful up", show=False),
        Binding(
            "pagedown", "cursor_page_down", "Page down", id="table.page_down", tooltip="A screenful down", show=False
        ),
        Binding("home,g", "cursor_first", "First row", id="table.first", tooltip="The first row", show=False),
        Binding("end,G", "cursor_last", "Last row", id="table.last", tooltip="The last row", show=False),
        Binding("left,h", "column_left", "Left", id="table.left", tooltip="Scroll a column left", show=False),
        Binding("right,l", "column_right", "Right", id="table.right", tooltip="Scroll a column right", show=False),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="table.filter",
            tooltip="Show only the rows that contain some text",
            show=False,
        ),
        Binding("escape", "clear_filter", "Clear filter", id="table.clear_filter", tooltip="Show every row again"),
        Binding(
            "o",
            "sort_next",
            "Sort",
            id="table.sort",
            tooltip="Sort by the next column (after the last, the table's own order)",
            show=False,
        ),
        Binding("O", "sort_reverse", "Reverse sort", id="table.reverse", tooltip="Reverse the sort", show=False),
    ]
    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
        }
        & > .live-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .live-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    @dataclass
    class Filtered(Message):
        """The rows shown changed under a filter: `shown` of `total` contain `text` ("" once it is cleared)."""

        table: LiveTable
        text: str
        shown: int
        total: int

    def __init__(self, now: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.now = now
        self._all: list[str] = []  # every row key, in the table's own order
        self._order: list[str] = []  # the row keys shown (filtered, sorted), top to bottom
        self._index: dict[str, int] = {}  # row key -> position in _order
        self._cells: dict[str, Row] = {}  # what each row shows
        self._haystacks: dict[str, str] = {}  # each row's cells as one lower-case line, for the filter
        self._filter = ""  # lower case
        self._filtered: tuple[str, int, int] = ("", 0, 0)  # what the last Filtered message said
        self._sort: int | None = None  # the column the operator sorted by, None for the table's own order
        self._reverse = False
        self._filter_line: TableFilter | None = None
        # Each row drawn at full width, with and without the cursor, until its cells or the styles change.
        self._strips: dict[tuple[str, bool], Strip] = {}
        self._header: Strip | None = None
        self._levels: dict[str, Style] = {}
        self._cursor = 0
        self._show_cursor = False
        self._widths = tuple(width for _, _, width in self.COLUMNS)

    def on_mount(self) -> None:
        self.virtual_size = Size(sum(width + 2 * PADDING for width in self._widths), len(self._order) + HEADER_LINES)

    # -- what tests and screens read ---------------------------------------------------------------------------

    @property
    def column_keys(self) -> list[str]:
        return [key for key, _, _ in self.COLUMNS]

    @property
    def row_count(self) -> int:
        """Rows shown (those that match the filter)."""
        return len(self._order)

    @property
    def total_rows(self) -> int:
        return len(self._all)

    @property
    def row_keys(self) -> list[str]:
        """Row keys in display order, the filter's matches only."""
        return list(self._order)

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def sort(self) -> tuple[str, bool] | None:
        """(column key, reversed), or None for the table's own order."""
        return None if self._sort is None else (self.COLUMNS[self._sort][0], self._reverse)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    def get_row_index(self, key: str) -> int:
        return self._index[key]

    def get_cell(self, row_key: str, column_key: str) -> Cell:
        return self._cells[row_key][self.column_keys.index(column_key)]

    def cursor_key(self) -> str | None:
        return self._order[self._cursor] if self._order else None

    # -- levels: TCSS colours for cells ------------------------------------------------------------------------

    def level_style(self, level: str) -> Style:
        """The colour of a TCSS level (ok, warn, bad, muted), without the table's background."""
        style = self._levels.get(level)
        if style is None:
            try:
                full = self.get_component_rich_style(f"level--{level}")  # resolves "auto" and alpha colours
            except KeyError:  # the stylesheet has not reached this table yet; the next sync restyles the cell
                return Style()
            style = self._levels[level] = Style(color=full.color, bold=full.bold)
        return style

    def level(self, text: str, level: str) -> Text:
        return Text(text, style=self.level_style(level), end="")

    def forget(self) -> None:
        """Resolve level colours again (after a theme change): the next sync restyles the cells that use them."""
        self._levels.clear()

    # -- keeping up with the collection ------------------------------------------------------------------------

    def sync(self, rows: Iterable[tuple[str, Row]]) -> None:
        """Make the table show exactly `rows` and repaint only the lines that changed. New rows go in order of the
        first column, at the bottom of an unsorted table, or where `rows` puts them (IN_GIVEN_ORDER); the
        operator's filter and sort apply on top; the cursor stays on its row."""
        seen: dict[str, None] = {}  # in the order given
        added: list[str] = []
        changed: list[str] = []
        moved = False  # a changed row now sorts elsewhere, or starts or stops matching the filter
        for key, cells in rows:
            seen[key] = None
            old = self._cells.get(key)
            if old is None:
                added.append(key)
            elif old == cells and not any(map(_restyled, old, cells)):
                continue
            else:
                changed.append(key)
                self._forget_strips(key)
                self._haystacks.pop(key, None)
                if self._sort is not None and old[self._sort] != cells[self._sort]:
                    moved = True
            self._cells[key] = cells
            if self._filter and not moved and old is not None and self._matches(key) != (key in self._index):
                moved = True
        stale = len(self._all) + len(added) - len(seen)
        if not added and not stale and not moved:
            self._repaint_rows([self._index[key] for key in changed if key in self._index])
            return
        if stale:
            self._all = [key for key in self._all if key in seen]
            for key in set(self._cells) - seen.keys():
                del self._cells[key]
                self._haystacks.pop(key, None)
                self._forget_strips(key)
        if self.IN_GIVEN_ORDER:
            self._all = list(seen)
        else:
            self._all.extend(added)
        if added and self.SORTED and not self.IN_GIVEN_ORDER:
            self._all.sort(key=lambda key: str(self._cells[key][0]).casefold())
        self._arrange()

    def _arrange(self) -> None:
        """Choose the rows shown and their order from _all, keep the cursor on its row, and lay out again."""
        cursor = self._order[self._cursor] if self._order and self._cursor < len(self._order) else None
        order = [key for key in self._all if self._matches(key)] if self._filter else list(self._all)
        if self._sort is not None:
            column = self._sort
            order.sort(key=lambda key: _sort_key(self._cells[key][column]), reverse=self._reverse)
        self._order = order
        self._index = {key: index for index, key in enumerate(order)}
        self._cursor = self._index.get(cursor, min(self._cursor, max(0, len(order) - 1))) if cursor else 0
        self.virtual_size = Size(self.virtual_size.width, len(order) + HEADER_LINES)
        self.refresh(layout=True)  # the height follows the rows where the panel sizes to them
        self._tell_filtered()

    def _matches(self, key: str) -> bool:
        haystack = self._haystacks.get(key)
        if haystack is None:
            cells = self._cells[key]
            haystack = self._haystacks[key] = "\t".join(c if isinstance(c, str) else c.plain for c in cells).casefold()
        return self._filter in haystack

    def _tell_filtered(self) -> None:
        said = (self._filter, len(self._order), len(self._all))
        if said != self._filtered and (self._filter or self._filtered[0]):
            self.post_message(self.Filtered(self, *said))
            if self._filter_line is not None:
                self._filter_line.show_count(said[1], said[2])
        self._filtered = said

    # -- filter and sort ---------------------------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Show only the rows whose cells contain `text` (any case); "" shows them all."""
        needle = text.casefold()
        if needle != self._filter:
            self._filter = needle
            self._arrange()
            self.refresh_bindings()

    def sort_by(self, column: str | None, *, reverse: bool = False) -> None:
        """Sort the rows by a column's values (numbers as numbers), or None for the table's own order."""
        self._sort = None if column is None else self.column_keys.index(column)
        self._reverse = reverse and column is not None
        self._header = None
        self._arrange()
        self._scroll_to_cursor()

    def action_sort_next(self) -> None:
        following = 0 if self._sort is None else self._sort + 1
        self.sort_by(self.COLUMNS[following][0] if following < len(self.COLUMNS) else None, reverse=self._reverse)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.COLUMNS[self._sort or 0][0], reverse=not self._reverse)

    async def action_filter(self) -> None:
        """Open the filter line above the table (or go back to it), where typing filters the rows."""
        parent = self.parent
        if not self.FILTERABLE or not isinstance(parent, Widget):
            return
        if self._filter_line is None:
            self._filter_line = TableFilter(self)
            await parent.mount(self._filter_line, before=self)
        self._filter_line.query_one(Input).focus()

    def action_clear_filter(self) -> None:
        self.set_filter("")
        self.close_filter_line()
        self.focus()

    def close_filter_line(self) -> None:
        if self._filter_line is not None:
            self._filter_line.remove()
            self._filter_line = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if refuses(self, action, parameters):
            return False
        if action == "clear_filter":
            return bool(self._filter)  # otherwise Esc goes on to the screen (back, close)
        if action == "filter":
            return self.FILTERABLE
        return True

    def _forget_strips(self, key: str) -> None:
        self._strips.pop((key, False), None)
        self._strips.pop((key, True), None)

    def _repaint_rows(self, indexes: list[int]) -> None:
        top = int(self.scroll_y)
        visible = [index for index in indexes if top <= index < top + self.size.height - HEADER_LINES]
        if visible:
            first, last = min(visible), max(visible)
            self.refresh(Region(0, first - top + HEADER_LINES, self.size.width, last - first + 1))

    # -- drawing -----------------------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # focus tint, theme: every row is drawn again in the new colours
        self._header = None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y < HEADER_LINES:
            header = base + self.get_component_rich_style("live-table--header")
            if self._header is None:
                self._header = self._draw(self._labels(), header)
            return self._header.crop_extend(scroll_x, scroll_x + width, header)
        index = y - HEADER_LINES + scroll_y
        if index >= len(self._order):
            return Strip.blank(width, base)
        key = self._order[index]
        cursor = index == self._cursor and self._show_cursor
        over = self.get_component_rich_style("live-table--cursor") if cursor else NO_STYLE
        strip = self._strips.get((key, cursor))
        if strip is None:
            strip = self._strips[key, cursor] = self._draw(self._cells[key], base + over, over)
        return strip.crop_extend(scroll_x, scroll_x + width, base + over)  # the cursor's bar spans the width

    def _labels(self) -> list[str]:
        """The column labels, the sorted one with its arrow (the label cut to leave it room)."""
        labels = [label for _, label, _ in self.COLUMNS]
        if self._sort is not None:
            label, width = labels[self._sort], self._widths[self._sort]
            labels[self._sort] = (
                f"{set_cell_size(label, min(cell_len(label), max(0, width - 2)))} {SORT_ARROWS[self._reverse]}"
            )
        return labels

    def _draw(self, cells: Iterable[Cell], style: Style, over: Style = NO_STYLE) -> Strip:
        """One row at full width: each cell cropped (with an ellipsis) or padded to its column. `over` wins over
        the cells' own colours (the cursor's, so its row reads as one bar)."""
        segments: list[Segment] = []
        pad = " " * PADDING
        for cell, width in zip(cells, self._widths, strict=True):
            if isinstance(cell, str):
                segments.append(Segment(pad + _fit(cell, width) + pad, style))
                continue
            text = cell.copy()
            text.truncate(width, overflow="ellipsis", pad=True)
            # Text.render leaves out the Text's own style when it has no spans: add it here.
            cell_style = style + (text.style if isinstance(text.style, Style) else Style.parse(text.style))
            segments.append(Segment(pad, style))
            parts = text.render(self.app.console)
            segments.extend(Segment(part.text, cell_style + part.style + over) for part in parts)
            segments.append(Segment(pad, style))
        return Strip(segments, self.virtual_size.width)

    # -- the cursor --------------------------------------------------------------------------------------------

    def on_focus(self) -> None:
        self._show_cursor = True  # only the focused table shows its cursor, so the eye finds where the keys go
        self._repaint_rows([self._cursor])

    def on_blur(self) -> None:
        self._show_cursor = False
        self._repaint_rows([self._cursor])

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        if not self._order:
            return
        row = max(0, min(row, len(self._order) - 1))
        before, self._cursor = self._cursor, row
        self._repaint_rows([before, row])
        if before != row:
            self.refresh_bindings()  # a screen may offer other keys for the row now selected
        if scroll:
            self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        rows_shown = max(1, self.scrollable_content_region.height - HEADER_LINES)
        top = int(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False)
        elif self._cursor >= top + rows_shown:
            self.scroll_to(y=self._cursor - rows_shown + 1, animate=False)

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - HEADER_LINES)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor + 1)

    def action_cursor_page_up(self) -> None:
        self.move_cursor(row=self._cursor - self._page())

    def action_cursor_page_down(self) -> None:
        self.move_cursor(row=self._cursor + self._page())

    def action_cursor_first(self) -> None:
        self.move_cursor(row=0)

    def action_cursor_last(self) -> None:
        self.move_cursor(row=len(self._order) - 1)

    def _column_starts(self) -> list[int]:
        starts, x = [], 0
        for width in self._widths:
            starts.append(x)
            x += width + 2 * PADDING
        return starts

    def action_column_left(self) -> None:
        x = int(self.scroll_x)
        self.scroll_to(x=max((start for start in self._column_starts() if start < x), default=0), animate=False)

    def action_column_right(self) -> None:
        x = int(self.scroll_x)
        following = [start for start in self._column_starts() if start > x]
        if following:
            self.scroll_to(x=min(following[0], int(self.max_scroll_x)), animate=False)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= HEADER_LINES:
            index = offset.y - HEADER_LINES + int(self.scroll_y)
            if index < len(self._order):
                self.move_cursor(row=index)


def _fit(text: str, width: int) -> str:
    """`text` in exactly `width` cells: padded, or cut with an ellipsis."""
    if len(text) <= width and text.isascii():
        return text.ljust(width)
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def _sort_key(cell: Cell) -> tuple[tuple[int, float, str], ...]:
    """A cell's text in natural order: "gpu10" after "gpu9", "12.5%" after "9%"; a blank or "-" sorts first."""
    text = (cell if isinstance(cell, str) else cell.plain).strip().casefold()
    if text in ("", "-"):
        return ()
    parts = NUMBER.split(text)
    return tuple((0, float(part), "") if index % 2 else (1, 0.0, part) for index, part in enumerate(parts) if part)


def _restyled(before: Cell, after: Cell) -> bool:
    # Text equality ignores the base style, and a level change may keep the words.
    return isinstance(before, Text) and isinstance(after, Text) and before.style != after.style


class TableFilter(Horizontal):
    """The filter line mounted above a table by `/`: what you type filters the table at once; Enter goes back to
    the rows with the filter kept, Esc clears it."""

    DEFAULT_CSS = """
    TableFilter {
        height: 1;
        width: 1fr;
        & > Input {
            border: none;
            height: 1;
            width: 1fr;
            padding: 0 1;
            background: $boost;
            &:focus {
                border: none;
                background-tint: $foreground 5%;
            }
        }
        & > .table-filter--count {
            width: auto;
            padding: 0 1;
            color: $text-muted;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "clear", "Clear filter", id="table.filter_clear", tooltip="Clear the filter and show every row"
        ),
        Binding("down", "back", "Rows", id="table.filter_done", tooltip="Back to the rows, keeping the filter"),
    ]

    def __init__(self, table: LiveTable) -> None:
        super().__init__()
        self.table = table
        self.count = Static("", classes="table-filter--count", markup=False)

    def compose(self) -> ComposeResult:
        yield Input(value=self.table.filter_text, placeholder="filter: type to narrow the rows", select_on_focus=False)
        yield self.count

    def on_mount(self) -> None:
        self.show_count(self.table.row_count, self.table.total_rows)

    def show_count(self, shown: int, total: int) -> None:
        self.count.update(f"{shown}/{total}")

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.table.set_filter(event.value)
        self.show_count(self.table.row_count, self.table.total_rows)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_back()

    def action_back(self) -> None:
        if not self.table.filter_text:
            self.table.close_filter_line()  # an empty filter line is only in the way
        self.table.focus()

    def action_clear(self) -> None:
        self.table.action_clear_filter()
