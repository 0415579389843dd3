"""`?`: every binding active here, with its keys and what it does, and where to remap them."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from console.settings import settings_path

# Keys Textual itself handles, which every screen has: no binding id, so they are listed here by hand.
BUILT_IN_KEYS = [
    ("tab / shift+tab", "Next / previous panel", ""),
    ("ctrl+p", "Command palette", ""),
]


def home_relative(path: Path) -> str:
    """`path` with the home directory written as ~, as an operator would type it."""
    try:
        return f"~/{path.relative_to(Path.home())}"
    except ValueError:
        return str(path)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help-body {
        width: 90%;
        max-width: 100;
        height: auto;
        max-height: 90%;
        border: round $primary;
        border-title-color: $primary;
        background: $surface;
        padding: 0 1;
    }
    #help-title { color: $text-muted; }
    #help-table { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close", tooltip="Close the list of keys"),
    ]

    def __init__(self, bindings: list[tuple[str, str, str]], settings_file: Path | None = None) -> None:
        """`bindings`: (keys, description, binding id) for the screen the help was opened from; `settings_file`:
        the console.json the console reads (by default where XDG_CONFIG_HOME puts it)."""
        super().__init__()
        self._rows = bindings
        self.settings_file = settings_file or settings_path()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Keys on this screen"
            yield Static(
                f"Remap any binding by its id in {home_relative(self.settings_file)}", id="help-title", markup=False
            )
            table: DataTable[str] = DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("Keys", "Action", "Id")
            for keys, description, binding_id in [*self._rows, *BUILT_IN_KEYS]:
                table.add_row(keys, description, binding_id)
            yield table
