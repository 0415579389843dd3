"""A yes/no question before anything destructive, naming exactly what will go."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from console.screens.form_base import FORMS_CSS
from console.widgets.key_hints import KeyHints


class ConfirmScreen(ModalScreen[bool]):
    """Asks one question that names exactly what will be destroyed; dismisses with True to go ahead."""

    CSS_PATH: ClassVar[str] = FORMS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "confirm", "Yes", id="confirm.yes", tooltip="Go ahead"),
        Binding("n,escape", "cancel", "No", id="confirm.no", tooltip="Leave everything as it is"),
    ]

    def __init__(self, question: str, detail: str = "", *, yes_label: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.yes_label = yes_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm-dialog"):
            yield Static(self.question, id="question")
            if self.detail:
                yield Static(self.detail, id="detail", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")
        yield KeyHints()

    def on_mount(self) -> None:
        # Enter must mean "yes" whatever is focused, so the buttons are for the mouse only.
        for button in self.query(Button):
            button.can_focus = False

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
