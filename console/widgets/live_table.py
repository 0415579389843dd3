"""A DataTable that follows a keyed collection: rows are added, changed and removed by key, never cleared and
refilled, and changed cells are written only where they can be seen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[Cell, ...]
Clock = Callable[[], float]
BULK_REMOVAL = 64  # stale rows above which, when they are most of the table, one rebuild beats row-by-row removal


class LiveTable(DataTable[Cell]):
    """A DataTable that follows a keyed collection: `sync` adds, updates and removes by row key."""

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = ()  # (column key, label, width)
    SORTED: ClassVar[bool] = True  # re-sort by the first column when rows are added
    COMPONENT_CLASSES: ClassVar[set[str]] = {"level--ok", "level--warn", "level--bad", "level--muted"}

    def __init__(self, now: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=False)
        self.now = now
        self._shown: dict[str, Row] = {}  # what each row displays
        # Rows out of view whose new cells are not written yet: 500 live requests change ~1,500 cells a second,
        # and every write makes the table drop its render caches, though a dozen rows are on screen.
        self._behind: dict[str, Row] = {}
        self._levels: dict[str, Style] = {}

    def on_mount(self) -> None:
        self._add_columns()

    # Only the focused table shows its cursor, so the eye finds where the keys go.
    def on_focus(self) -> None:
        self.show_cursor = True

    def on_blur(self) -> None:
        self.show_cursor = False

    def _add_columns(self) -> None:
        if not self.columns:
            for key, label, width in self.COLUMNS:
                self.add_column(label, width=width, key=key)

    @property
    def column_keys(self) -> list[str]:
        return [key for key, _, _ in self.COLUMNS]

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

    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def forget(self) -> None:
        """Make the next sync rewrite every cell (after a theme change restyles the levels)."""
        self._levels.clear()
        self._shown = {key: tuple("" for _ in self.COLUMNS) for key in self._shown}

    def sync(self, rows: Iterable[tuple[str, Row]]) -> None:
        """Make the table show exactly `rows`: rows are added and removed at once, and changed cells are written
        for rows in view; the others are written when they scroll into view."""
        self._add_columns()
        cursor = self.cursor_key()
        in_view = self._rows_in_view()
        seen: set[str] = set()
        added = False
        for key, cells in rows:
            seen.add(key)
            old = self._shown.get(key)
            if old is None:
                self.add_row(*map(_text, cells), key=key)
                self._shown[key] = cells
                added = True
            elif old != cells or any(map(_restyled, old, cells)):
                if self.get_row_index(key) in in_view:
                    self._write(key, cells)
                else:
                    self._behind[key] = cells
        stale = [key for key in self._shown if key not in seen]
        if len(stale) > BULK_REMOVAL and len(stale) * 2 > len(self._shown):
            self._keep_only(seen)
        else:
            for key in stale:
                self.remove_row(key)
                del self._shown[key]
                self._behind.pop(key, None)
        if added and self.SORTED and self.row_count > 1:
            self._catch_up(range(self.row_count))  # the sort reads what the rows display
            self.sort(self.column_keys[0], key=lambda cell: str(cell).casefold())
        elif added or stale:
            self._catch_up(self._rows_in_view())  # rows moved up or down into view
        if cursor is not None and cursor in self._shown and (added or stale):
            index = self.get_row_index(cursor)
            if index != self.cursor_row:
                self.move_cursor(row=index, scroll=False)


    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._catch_up(self._rows_in_view())

    def _rows_in_view(self) -> range:
        """Indexes of the rows on screen, and a screenful either side so a page move finds them written."""
        page = max(self.size.height, 1)
        top = int(self.scroll_y)
        return range(max(0, top - page), top + 2 * page)

    def _write(self, key: str, cells: Row) -> None:
        for column, before, after in zip(self.column_keys, self._shown[key], cells, strict=True):
            if before != after or _restyled(before, after):
                self.update_cell(key, column, _text(after))
        self._shown[key] = cells
        self._behind.pop(key, None)

    def _catch_up(self, indexes: range) -> None:
        if not self._behind:
            return
        for key in [key for key in self._behind if self.get_row_index(key) in indexes]:
            self._write(key, self._behind[key])

    def _keep_only(self, keys: set[str]) -> None:
        # remove_row costs O(rows), so a burst that removes most rows (a reconnect, a mass cancel) re-adds the rest.
        order = [row.key.value for row in self.ordered_rows if row.key.value in keys]
        self._shown = {key: self._behind.get(key, self._shown[key]) for key in order}
        self._behind.clear()
        self.clear()
        for key, cells in self._shown.items():
            self.add_row(*map(_text, cells), key=key)


def _restyled(before: Cell, after: Cell) -> bool:
    # Text equality ignores the base style, and a level change may keep the words.
    return isinstance(before, Text) and isinstance(after, Text) and before.style != after.style


def _text(cell: Cell) -> Text:
    # Plain Text, never markup: names and model files come from users.
    return cell if isinstance(cell, Text) else Text(cell, end="")
