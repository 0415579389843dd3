"""Create an API key (its secret shown once, with a copy binding) or edit an existing key's models and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from console.screens.form_base import (
    FormScreen,
    ModelFieldValidator,
    form_field,
    integer_input,
    optional_int,
    split_list,
)
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError
from gateway_core.contracts.admin_requests import KeySpec
from gateway_core.contracts.views import CreatedKey, KeyView

_SAMPLE = {"name": "sample"}


def _check(field: str) -> ModelFieldValidator:
    return ModelFieldValidator(KeySpec, field, _SAMPLE)


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


class KeyLimits(TypedDict):
    """What both key forms edit; a key view is one, and a new key starts from NO_LIMITS."""

    models: list[str] | None
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None


NO_LIMITS: KeyLimits = {"models": None, "rpm": None, "tpm": None, "max_concurrency": None}


def _limit_field(label: str, name: str, value: int | None) -> Widget:
    """A whole-number limit, where empty means none."""
    return form_field(label, name, integer_input(name, _check(name), _number(value), placeholder="empty: no limit"))


def limit_fields(key: KeyLimits) -> list[Widget]:
    """The fields both forms share, prefilled from `key` (a key view) when editing."""
    models = key["models"]
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
        _limit_field("Requests/min", "rpm", key["rpm"]),
        _limit_field("Tokens/min", "tpm", key["tpm"]),
        _limit_field("Max concurrency", "max_concurrency", key["max_concurrency"]),
    ]


def without_secret(created: CreatedKey) -> KeyView:
    """The key's view as every other answer gives it, so the secret goes no further than this form."""
    return {
        "id": created["id"],
        "name": created["name"],
        "models": created["models"],
        "rpm": created["rpm"],
        "tpm": created["tpm"],
        "max_concurrency": created["max_concurrency"],
        "expires_at": created["expires_at"],
        "revoked": created["revoked"],
        "created_at": created["created_at"],
        "last_used_at": created["last_used_at"],
        "expired": created["expired"],
        "capture": created["capture"],
        "usage": created["usage"],
    }


class _KeyForm(FormScreen[KeyView]):
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
        Binding(
            "w",
            "copy_webhook_secret",
            "Copy webhook secret",
            id="key.copy_webhook_secret",
            tooltip="Copy the secret that verifies this key's job callbacks",
        ),
        Binding("enter", "done", "Done", id="key.done", tooltip="Close; the key will not be shown again"),
    ]

    @dataclass
    class Created(Message):
        created: CreatedKey

    def __init__(self) -> None:
        super().__init__()
        self.created: KeyView | None = None
        self._secret: str | None = None
        self._webhook_secret: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = "Create API key"
            with VerticalScroll(classes="form-body", can_focus=False):
                yield form_field(
                    "Name",
                    "name",
                    Input(placeholder="e.g. billing-service", id="name", compact=True, validators=[_check("name")]),
                )
                yield from limit_fields(NO_LIMITS)
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
                yield Static("", id="webhook-secret", markup=False)
                yield Static(
                    "The key and its webhook secret will not be shown again: copy them now (c, w), then press enter.",
                    id="secret-warning",
                )
            yield Static("", id="form-error", classes="form-error")
            yield self.buttons()
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Before creation the form saves; after it, only copy and done make sense.
        if action in ("copy", "copy_webhook_secret", "done"):
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
        self.post_message(self.Created(created))

    def on_key_create_form_created(self, event: KeyCreateForm.Created) -> None:
        """Show the secret this once instead of closing; the view kept for dismissal has no secret."""
        self.saving = False
        self._secret = event.created["key"]
        self.created = without_secret(event.created)
        self.query_one("#secret", Static).update(self._secret)
        self._webhook_secret = event.created["webhook_secret"]
        self.query_one("#webhook-secret", Static).update(
            f"webhook secret (verifies its job callbacks):\n{self._webhook_secret}"
        )
        self.add_class("-created")
        self.set_focus(None)
        self.refresh_bindings()

    def action_copy(self) -> None:
        if self._secret:
            self.app.copy_to_clipboard(self._secret)
            self.notify("key copied to the clipboard")

    def action_copy_webhook_secret(self) -> None:
        if self._webhook_secret:
            self.app.copy_to_clipboard(self._webhook_secret)
            self.notify("webhook secret copied to the clipboard")

    def action_done(self) -> None:
        self.dismiss(self.created)

    def action_cancel(self) -> None:
        # Escape closes the form; once the key exists that is the same as "done": the key is kept.
        self.dismiss(self.created)


class KeyEditForm(_KeyForm):
    """Edits models and limits of `key` (a key view); dismisses with the updated view, or None."""

    def __init__(self, key: KeyView) -> None:
        super().__init__()
        self.key = key

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = f"Edit key {self.key['name']} ({self.key['id']})"
            with VerticalScroll(classes="form-body", can_focus=False):
                yield from limit_fields(self.key)
                expiry = "never expires" if self.key["expires_at"] is None else "has an expiry"
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
