"""A live table on Textual's Line API: rows are added, changed and removed by key, never cleared and refilled,
and a row is drawn again only when its cells change.

Textual's DataTable drops every cached cell on any `update_cell`, so a dashboard whose requests move every second
re-rendered every visible cell of every table through Rich on each redraw (about 60 ms at the issue's scale on a
2-core box, which is what a keypress waited behind). Here each row's drawing is kept as one Strip until that row
changes, the header is drawn once, and a redraw that changes three rows repaints three lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text
Row = tuple[Cell, ...]
Clock = Callable[[], float]
PADDING = 1  # blank cells either side of each column, as in Textual's DataTable
HEADER_LINES = 1
NO_STYLE = Style.null()


class LiveTable(ScrollView, can_focus=True):
    """A keyed table that follows a collection: `sync` adds, updates and removes rows by key.

    Subclasses declare COLUMNS as (column key, label, width) and turn their domain objects into cells (plain
    strings, or Rich Text for a coloured level). Up, down, page up/down, home and end move a row cursor, which
    shows while the table has focus; a click selects a row.
    """

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    SORTED: ClassVar[bool] = True  # re-sort by the first column when rows are added
    IN_GIVEN_ORDER: ClassVar[bool] = False  # rows in the order `sync` is given them (a newest-first list)
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header",
        "live-table--cursor",
        "level--ok",
        "level--warn",
        "level--bad",
        "level--muted",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "cursor_page_up", "Page up", show=False),
        Binding("pagedown", "cursor_page_down", "Page down", show=False),
        Binding("home", "cursor_first", "First row", show=False),
        Binding("end", "cursor_last", "Last row", show=False),
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

    def __init__(self, now: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.now = now
        self._order: list[str] = []  # row keys, top to bottom
        self._index: dict[str, int] = {}  # row key -> position in _order
        self._cells: dict[str, Row] = {}  # what each row shows
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
        return len(self._order)

    @property
    def row_keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

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
        first column, at the bottom of an unsorted table, or where `rows` puts them (IN_GIVEN_ORDER); the cursor
        stays on its row."""
        cursor = self.cursor_key()
        seen: dict[str, None] = {}  # in the order given
        added: list[str] = []
        changed: list[int] = []
        for key, cells in rows:
            seen[key] = None
            old = self._cells.get(key)
            if old is None:
                added.append(key)
            elif old == cells and not any(map(_restyled, old, cells)):
                continue
            else:
                changed.append(self._index[key])
                self._forget_strips(key)
            self._cells[key] = cells
        stale = len(self._order) + len(added) - len(seen)
        if not added and not stale:
            self._repaint_rows(changed)
            return
        if stale:
            self._order = [key for key in self._order if key in seen]
            for key in set(self._cells) - seen.keys():
                del self._cells[key]
                self._forget_strips(key)
        if self.IN_GIVEN_ORDER:
            self._order = list(seen)
        else:
            self._order.extend(added)
        if added and self.SORTED and not self.IN_GIVEN_ORDER:
            self._order.sort(key=lambda key: str(self._cells[key][0]).casefold())
        self._index = {key: index for index, key in enumerate(self._order)}
        self._cursor = self._index.get(cursor, min(self._cursor, max(0, len(self._order) - 1))) if cursor else 0
        self.virtual_size = Size(self.virtual_size.width, len(self._order) + HEADER_LINES)
        self.refresh(layout=True)  # the height follows the rows where the panel sizes to them

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
                self._header = self._draw([label for _, label, _ in self.COLUMNS], header)
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


def _restyled(before: Cell, after: Cell) -> bool:
    # Text equality ignores the base style, and a level change may keep the words.
    return isinstance(before, Text) and isinstance(after, Text) and before.style != after.style
