"""The shared base of the console's forms: fields, validation against gateway_core's models, save flow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static

from console.screens.base import ConsoleHost
from gateway_core.client import CorralError

FORMS_CSS = str(Path(__file__).parent.parent / "styles" / "forms.tcss")
ResultT = TypeVar("ResultT")


class ModelFieldValidator(Validator):
    """Checks one field with a gateway_core pydantic model; `sample` fills the model's other required fields."""

    def __init__(self, model: type[BaseModel], field: str, sample: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.field = field
        self.sample = sample

    def validate(self, value: str) -> ValidationResult:
        try:
            self.model.model_validate({**self.sample, self.field: value})
        except ValidationError as error:
            problems = [e["msg"].removeprefix("Value error, ") for e in error.errors() if e["loc"][:1] == (self.field,)]
            if problems:
                return self.failure("; ".join(problems), value)
        return self.success()


def optional_int(text: str) -> int | None:
    return int(text) if text.strip() else None


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def integer_input(name: str, validator: Validator, value: str = "", placeholder: str = "") -> Input:
    """A whole-number field whose id is `name`; empty is allowed (the daemon's default, or no limit)."""
    return Input(
        value,
        placeholder=placeholder,
        id=name,
        type="integer",
        compact=True,
        valid_empty=True,
        validators=[validator],
    )


def form_field(label: str, name: str, widget: Widget, hint: str = "") -> Vertical:
    """A labelled row for `widget` (whose id is `name`, the API field), with room for its error underneath."""
    children: list[Widget] = [
        Horizontal(Label(label, classes="field-label"), widget, classes="field-line"),
        Static("", id=f"{name}-error", classes="field-error"),
    ]
    if hint:
        children.insert(1, Static(hint, classes="hint field-hint"))
    return Vertical(*children, classes="field", id=f"{name}-field")


class FormScreen(ModalScreen[ResultT | None]):
    """Shared behaviour: as-you-type errors, Enter moves on, ctrl+s saves, esc cancels, daemon errors by field.

    Dismisses with corral-core's answer to the save (a `ResultT`), or None when cancelled."""

    CSS_PATH: ClassVar[str] = FORMS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="form.save", tooltip="Send the form to corral-core"),
        Binding("escape", "cancel", "Cancel", id="form.cancel", tooltip="Close without saving"),
    ]

    @dataclass
    class Saved(Message):
        result: Any  # the form's ResultT: a message class nested in a generic screen cannot name its parameter

    @dataclass
    class Refused(Message):
        error: CorralError

    def __init__(self) -> None:
        super().__init__()
        self.saving = False
        self._save_tried = False

    @property
    def host(self) -> ConsoleHost:
        return self.app  # type: ignore[return-value]  # Screen.app is the base App; ours is a ConsoleHost

    # -- validation ---------------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        name = event.input.id or ""
        result = event.validation_result
        if result is not None and not result.is_valid and (event.value or self._save_tried):
            self.show_error(name, "; ".join(result.failure_descriptions))
        else:
            self.show_error(name, "")
        self.field_changed(event.input)

    def field_changed(self, field: Input) -> None:
        """Called after each change to an input has been validated; forms that react to edits override it."""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def invalid_inputs(self, skip: frozenset[str] = frozenset()) -> list[Input]:
        """Validate every field not in `skip` now (empty required ones included) and mark the ones that fail."""
        self._save_tried = True
        invalid = []
        for field in self.query(Input):
            if field.id in skip:
                continue
            result = field.validate(field.value)
            if result is not None and not result.is_valid:
                self.show_error(field.id or "", "; ".join(result.failure_descriptions))
                invalid.append(field)
        return invalid

    def refuse_invalid(self) -> bool:
        """True (and the first bad field focused) when the form may not be sent yet."""
        invalid = self.invalid_inputs()
        if invalid:
            self.show_form_error(f"fix the {len(invalid)} marked field(s) first")
            invalid[0].focus()
        return bool(invalid)

    # -- errors -------------------------------------------------------------------------------------------

    def show_error(self, name: str, message: str) -> None:
        errors = self.query(f"#{name}-error") if name else None
        if not errors:
            if message:
                self.show_form_error(message)
            return
        error = errors.first(Static)
        error.update(message)
        error.set_class(bool(message), "-shown")

    def show_form_error(self, message: str) -> None:
        status = self.query_one("#form-error", Static)
        status.update(message)
        status.set_class(bool(message), "-shown")

    def on_form_screen_refused(self, event: FormScreen.Refused) -> None:
        self.saving = False
        self.refused(event.error)

    def refused(self, error: CorralError) -> None:
        """corral-core said no: put its message under the field it names, keep the form open."""
        field = (error.param or "").split(".")[0]
        if field and self.query(f"#{field}-error"):
            self.show_error(field, error.message)
            self.show_form_error(f"corral-core refused: see {field}")
            target = self.query(f"#{field}")
            if target and target.first().focusable:
                target.first().focus()
        else:
            self.show_form_error(f"corral-core refused: {error.message}")

    def on_form_screen_saved(self, event: FormScreen.Saved) -> None:
        self.saving = False
        self.saved(event.result)

    def saved(self, result: ResultT) -> None:
        self.dismiss(result)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button named `x` runs `action_x`, so the mouse and the keys do the same thing."""
        action = getattr(self, f"action_{event.button.id}", None)
        if callable(action):
            action()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        if self.saving or self.refuse_invalid():
            return
        self.show_form_error("")
        self.saving = True
        self.submit()

    def submit(self) -> None:
        """Start the save worker; the subclass posts Saved or Refused."""
        raise NotImplementedError
