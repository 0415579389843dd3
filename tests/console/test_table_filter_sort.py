"""Every live table filters as you type, sorts by any column and takes vim's keys, without giving up the Line API's
promise: rows are synced by key and a row is drawn again only when it changes."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from console.app import CorralApp
from console.widgets.live_table import CURSOR_BINDING_IDS, LiveTable, Row, TableFilter
from console.widgets.panels import DashboardPanel
from tests.testbed.waiting import wait_for_async

APP_WAIT_S = 15.0


class Servers(LiveTable):
    COLUMNS = (("name", "name", 10), ("load", "load", 6), ("note", "note", 30))
    SORTED = False

    def __init__(self) -> None:
        super().__init__(lambda: 0.0, id="servers")
        self.drawn: list[str] = []  # the text of every row drawn, in order

    def _draw(self, cells, style, over=LiveTable._draw.__defaults__[0]):  # type: ignore[no-untyped-def,index]
        self.drawn.append(str(next(iter(cells), "")))
        return super()._draw(cells, style, over)


def servers(count: int = 30) -> list[tuple[str, Row]]:
    return [
        (f"srv-{i:02d}", (f"srv-{i:02d}", f"{(i * 7) % 30}%", "GPU box" if i % 3 == 0 else "cpu")) for i in range(count)
    ]


class TableHarness(App[None]):
    def __init__(self, rows: list[tuple[str, Row]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Servers()

    def on_mount(self) -> None:
        table = self.query_one(Servers)
        table.styles.height = 12
        table.sync(self.rows)
        table.focus()


def line(table: LiveTable, y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))


async def type_filter(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("slash", *text)
    await pilot.pause()


@pytest.mark.asyncio
async def test_slash_filters_the_rows_as_you_type_in_any_case_and_esc_clears_it():
    app = TableHarness(servers())
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(Servers)
        await type_filter(pilot, "gpu")

        assert isinstance(app.focused, Input), "/ opens the filter line and puts the keyboard in it"
        assert table.row_keys == [f"srv-{i:02d}" for i in range(0, 30, 3)], "'gpu' matches 'GPU box' only"
        assert str(app.query_one(TableFilter).count.render()) == "10/30"

        await pilot.press("space", "B", "O")
        await pilot.pause()
        assert len(table.row_keys) == 10

        await pilot.press("enter")  # back to the rows, the filter kept
        assert app.focused is table
        assert table.filter_text == "gpu bo"
        await pilot.press("escape")
        await pilot.pause()

        assert table.row_count == 30
        assert table.filter_text == ""
        assert not app.query(TableFilter), "Esc takes the filter line away"
        assert app.focused is table


@pytest.mark.asyncio
async def test_a_filter_survives_live_updates_and_unchanged_rows_are_not_drawn_again():
    rows = servers(30)
    app = TableHarness(rows)
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(Servers)
        await type_filter(pilot, "gpu")
        await pilot.press("enter")
        await pilot.pause()
        shown = table.row_keys
        table.drawn.clear()

        # srv-01 starts matching, srv-03 stops, srv-06 changes but still matches; the rest stay as they were.
        update = dict(rows)
        update["srv-01"] = ("srv-01", "99%", "GPU box")
        update["srv-03"] = ("srv-03", "1%", "cpu")
        update["srv-06"] = ("srv-06", "50%", "GPU box")
        table.sync(update.items())
        await pilot.pause()

        assert table.row_keys == ["srv-00", "srv-01", *[key for key in shown if key not in ("srv-00", "srv-03")]]
        assert table.total_rows == 30
        assert {"srv-01", "srv-06"} <= set(table.drawn), "the rows that changed are drawn again"
        assert not {"srv-09", "srv-12"} & set(table.drawn), "rows that did not change keep their strip"
        assert str(app.query_one(TableFilter).count.render()) == "10/30"


@pytest.mark.asyncio
async def test_o_sorts_by_the_next_column_with_an_arrow_and_capital_o_reverses_the_cursor_staying_on_its_row():
    app = TableHarness(servers(30))
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(Servers)
        await pilot.press("j", "j", "j")  # srv-03, at 21%
        assert table.cursor_key() == "srv-03"

        await pilot.press("o", "o")  # name, then load
        await pilot.pause()
        assert table.sort == ("load", False)
        loads = [float(str(table.get_cell(key, "load")).rstrip("%")) for key in table.row_keys]
        assert loads == sorted(loads), "numbers sort as numbers: 9% before 14%"
        assert line(table, 0).split()[:3] == ["name", "load", "▲"]
        assert table.cursor_key() == "srv-03"

        await pilot.press("O")
        await pilot.pause()
        assert table.sort == ("load", True)
        assert [float(str(table.get_cell(key, "load")).rstrip("%")) for key in table.row_keys] == sorted(
            loads, reverse=True
        )
        assert "▼" in line(table, 0)
        assert table.cursor_key() == "srv-03"

        await pilot.press("o", "o")  # note, then back to the table's own order
        await pilot.pause()
        assert table.sort is None
        assert table.row_keys == [f"srv-{i:02d}" for i in range(30)]
        assert table.cursor_key() == "srv-03"


@pytest.mark.asyncio
async def test_vim_keys_move_the_cursor_as_the_arrows_do_and_h_l_scroll_a_column():
    app = TableHarness(servers(30))
    async with app.run_test(size=(30, 20)) as pilot:
        table = app.query_one(Servers)
        await pilot.press("j", "j", "k")
        assert table.cursor_key() == "srv-01"
        await pilot.press("G")
        assert table.cursor_key() == "srv-29"
        await pilot.press("g")
        assert table.cursor_key() == "srv-00"

        await pilot.press("l")
        await pilot.pause()
        assert table.scroll_x == 12, "one column (10 wide, padded) to the right"
        assert line(table, 0).split()[0] == "load"
        await pilot.press("h")
        await pilot.pause()
        assert table.scroll_x == 0


@pytest.mark.asyncio
async def test_table_keys_have_ids_and_tooltips_and_the_keymap_remaps_them():
    bindings = [binding for binding in LiveTable.BINDINGS if not isinstance(binding, tuple)]
    assert all(binding.id and binding.id.startswith("table.") and binding.tooltip for binding in bindings)
    assert {binding.id for binding in bindings} >= CURSOR_BINDING_IDS

    app = TableHarness(servers(30))
    app.set_keymap({"table.down": "ctrl+n"})
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(Servers)
        await pilot.press("ctrl+n", "ctrl+n")
        assert table.cursor_key() == "srv-02"
        await pilot.press("j")
        assert table.cursor_key() == "srv-02", "the remap replaces j and down"


@pytest.mark.asyncio
async def test_the_providers_panel_filter_shows_its_match_count_in_the_panel_title(
    corral_daemon, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("alpha-gpu", "beta-cpu", "gamma-gpu"):
        corral_daemon.add_provider(name, "http://127.0.0.1:9", enabled=False)
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for_async(
            lambda: screen.providers.row_count == 3, "three provider rows", APP_WAIT_S, pause=pilot.pause
        )
        screen.providers.focus()
        await type_filter(pilot, "GPU")
        panel = screen.query_one("#providers", DashboardPanel)

        assert screen.providers.row_keys == ["alpha-gpu", "gamma-gpu"]
        assert str(panel.border_title).startswith("Providers 2/3")

        corral_daemon.add_provider("delta-gpu", "http://127.0.0.1:9", enabled=False)
        await wait_for_async(
            lambda: str(panel.border_title).startswith("Providers 3/4"),
            "the new matching provider to count",
            APP_WAIT_S,
            pause=pilot.pause,
        )
        assert screen.providers.row_keys == ["alpha-gpu", "delta-gpu", "gamma-gpu"]

        await pilot.press("escape", "escape")  # out of the filter line, and clear
        await pilot.pause()
        assert str(panel.border_title).startswith("Providers · ")
        assert screen.providers.row_count == 4
