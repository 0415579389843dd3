"""Create an API key (its secret shown once, with a copy binding) or edit an existing key's models and limits."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from console.screens.form_base import FormScreen, ModelFieldValidator, form_field, optional_int, split_list
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError
from gateway_core.contracts.admin_requests import KeySpec

_SAMPLE = {"name": "sample"}


def _check(field: str) -> ModelFieldValidator:
    return ModelFieldValidator(KeySpec, field, _SAMPLE)


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _number(value: Any) -> str:
    return "" if value is None else str(value)


def limit_fields(key: dict[str, Any]) -> list[Widget]:
    """The fields both forms share, prefilled from `key` (a key view) when editing."""
    models = key.get("models")
    return [
        form_field(
            "Models",
            "models",
            Input(
                ", ".join(models) if models else "",
                placeholder="M1, M2 (empty: every model)",
                id="models",
                compact=True,
            ),
        ),
        form_field(
            "Requests/min",
            "rpm",
            Input(
                _number(key.get("rpm")),
                placeholder="empty: no limit",
                id="rpm",
                type="integer",
                compact=True,
                valid_empty=True,
                validators=[_check("rpm")],
            ),
        ),
        form_field(
            "Tokens/min",
            "tpm",
            Input(
                _number(key.get("tpm")),
                placeholder="empty: no limit",
                id="tpm",
                type="integer",
                compact=True,
                valid_empty=True,
                validators=[_check("tpm")],
            ),
        ),
        form_field(
            "Max concurrency",
            "max_concurrency",
            Input(
                _number(key.get("max_concurrency")),
                placeholder="empty: no limit",
                id="max_concurrency",
                type="integer",
                compact=True,
                valid_empty=True,
                validators=[_check("max_concurrency")],
            ),
        ),
    ]


class _KeyForm(FormScreen[dict[str, Any] | None]):
    def _text(self, name: str) -> str:
        return self.query_one(f"#{name}", Input).value.strip()

    def limits(self) -> dict[str, Any]:
        """Models and limits as the API takes them; an empty field means "all models" or "no limit"."""
        models = split_list(self._text("models"))
        return {
            "models": models or None,
            "rpm": optional_int(self._text("rpm")),
            "tpm": optional_int(self._text("tpm")),
            "max_concurrency": optional_int(self._text("max_concurrency")),
        }

    @staticmethod
    def buttons() -> Horizontal:
        return Horizontal(
            Button("Save", id="save", variant="primary", compact=True),
            Button("Cancel", id="cancel", compact=True),
            classes="buttons",
        )


class KeyCreateForm(_KeyForm):
    """Creates a key and shows its secret once; dismisses with the key view WITHOUT "key", or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy key", id="key.copy", tooltip="Copy the new key to the clipboard"),
        Binding("enter", "done", "Done", id="key.done", tooltip="Close; the key will not be shown again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.created: dict[str, Any] | None = None
        self._secret: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = "Create API key"
            with VerticalScroll(classes="form-body", can_focus=False):
                yield form_field(
                    "Name",
                    "name",
                    Input(placeholder="e.g. billing-service", id="name", compact=True, validators=[_check("name")]),
                )
                yield from limit_fields({})
                yield form_field(
                    "Expires in days",
                    "expires_in_days",
                    Input(
                        placeholder="empty: never",
                        id="expires_in_days",
                        type="number",
                        compact=True,
                        valid_empty=True,
                        validators=[_check("expires_in_days")],
                    ),
                )
            with Vertical(id="created"):
                yield Static("", id="secret")
                yield Static(
                    "This key will not be shown again: copy it now (c), then press enter.", id="secret-warning"
                )
            yield Static("", id="form-error", classes="form-error")
            yield self.buttons()
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Before creation the form saves; after it, only copy and done make sense.
        if action in ("copy", "done"):
            return self._secret is not None
        if action == "save":
            return self._secret is None
        return True

    def submit(self) -> None:
        fields = {**self.limits(), "expires_in_days": _optional_float(self._text("expires_in_days"))}
        self.create_key(self._text("name"), {k: v for k, v in fields.items() if v is not None})

    @work(exclusive=True, group="key-save")
    async def create_key(self, name: str, fields: dict[str, Any]) -> None:
        try:
            created = await self.host.client.create_key(name, **fields)
        except CorralError as error:
            self.post_message(self.Refused(error))
            return
        self.post_message(self.Saved(created))

    def saved(self, result: dict[str, Any]) -> None:
        """Show the secret this once instead of closing; the view kept for dismissal has no secret."""
        self._secret = str(result["key"])
        self.created = {k: v for k, v in result.items() if k != "key"}
        self.query_one("#secret", Static).update(self._secret)
        self.add_class("-created")
        self.set_focus(None)
        self.refresh_bindings()

    def action_copy(self) -> None:
        if self._secret:
            self.app.copy_to_clipboard(self._secret)
            self.notify("key copied to the clipboard")

    def action_done(self) -> None:
        self.dismiss(self.created)

    def action_cancel(self) -> None:
        # Escape closes the form; once the key exists that is the same as "done": the key is kept.
        self.dismiss(self.created)


class KeyEditForm(_KeyForm):
    """Edits models and limits of `key` (a key view); dismisses with the updated view, or None."""

    def __init__(self, key: dict[str, Any]) -> None:
        super().__init__()
        self.key = key

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = f"Edit key {self.key['name']} ({self.key['id']})"
            with VerticalScroll(classes="form-body", can_focus=False):
                yield from limit_fields(self.key)
                expiry = "never expires" if not self.key.get("expires_at") else "has an expiry"
                yield form_field(
                    "Expires in days",
                    "expires_in_days",
                    Input(
                        placeholder="empty: keep as is",
                        id="expires_in_days",
                        type="number",
                        compact=True,
                        valid_empty=True,
                        validators=[_check("expires_in_days")],
                    ),
                    hint=f"now {expiry}; a number sets a new expiry from today",
                )
            yield Static("", id="form-error", classes="form-error")
            yield self.buttons()
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#models", Input).focus()

    def submit(self) -> None:
        changes = self.limits()
        days = _optional_float(self._text("expires_in_days"))
        if days is not None:
            changes["expires_in_days"] = days
        self.update_key(changes)

    @work(exclusive=True, group="key-save")
    async def update_key(self, changes: dict[str, Any]) -> None:
        try:
            updated = await self.host.client.update_key(self.key["id"], **changes)
        except CorralError as error:
            self.post_message(self.Refused(error))
            return
        self.post_message(self.Saved(updated))
