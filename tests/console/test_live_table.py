"""LiveTable on its own: the row cursor under the keyboard, and cells fitted to their columns."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from console.widgets.live_table import LiveTable

ROWS = 100


class Names(LiveTable):
    COLUMNS = (("name", "name", 8), ("note", "note", 6))
    SORTED = False


class TableHarness(App[None]):
    def compose(self) -> ComposeResult:
        yield Names(lambda: 0.0, id="names")

    def on_mount(self) -> None:
        table = self.query_one(Names)
        table.styles.height = 12  # the header and 11 rows
        table.sync((f"row-{i:03d}", (f"row-{i:03d}", "")) for i in range(ROWS))
        table.focus()


def line(table: LiveTable, y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))


def rows_in_view(table: LiveTable) -> range:
    top = int(table.scroll_y)
    return range(top, top + table.size.height - 1)


@pytest.mark.asyncio
async def test_keys_move_the_cursor_and_the_view_follows_it():
    app = TableHarness()
    async with app.run_test(size=(40, 20)) as pilot:
        table = app.query_one(Names)
        await pilot.pause()

        await pilot.press("down", "down")
        assert table.cursor_key() == "row-002"

        await pilot.press("pagedown")
        assert table.cursor_row == 2 + 11
        assert table.cursor_row in rows_in_view(table)

        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_key() == f"row-{ROWS - 1:03d}"
        assert table.cursor_row in rows_in_view(table)
        assert line(table, table.size.height - 1).split()[0] == f"row-{ROWS - 1:03d}"

        await pilot.press("home", "up")
        await pilot.pause()
        assert table.cursor_row == 0
        assert table.scroll_y == 0
        assert line(table, 0).split() == ["name", "note"], "the header stays on the first line"


@pytest.mark.asyncio
async def test_cells_are_fitted_to_their_columns_with_an_ellipsis_and_wide_characters_keep_alignment():
    app = TableHarness()
    async with app.run_test(size=(40, 20)) as pilot:
        table = app.query_one(Names)
        table.sync([("a", ("a-name-far-too-long", "ok")), ("b", ("模型名", "ok")), ("c", ("short", "ok"))])
        await pilot.pause()

        lines = [line(table, y) for y in (1, 2, 3)]
        assert lines[0].startswith(" a-name-… ")
        assert {text.index("ok") for text in (lines[0], lines[2])} == {11}
        # 模型名 is 3 characters but 6 cells wide: the next column starts where the others' do.
        assert lines[1].startswith(" 模型名    ok")
