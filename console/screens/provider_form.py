"""Add or edit a provider: every field checked as it is typed, a live Test, and Save through corral-core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Select, Static

from console.screens.form_base import (
    FormScreen,
    ModelFieldValidator,
    form_field,
    integer_input,
    optional_int,
    split_list,
)
from console.widgets.key_hints import KeyHints
from console.widgets.panels import without_error_kind
from gateway_core.client import CorralError
from gateway_core.contracts.views import ProbeAnswer, ProviderPublicView, ProviderView
from gateway_core.providers.config import PROVIDER_TYPES, ProviderConfig

# Valid values for the other required fields, so one field can be checked on its own.
_SAMPLE = {"name": "sample", "type": "openai", "base_url": "http://127.0.0.1:8080"}


# What a new provider's form starts from.
NEW_PROVIDER: ProviderPublicView = {
    "name": "",
    "type": "llama-server",
    "base_url": "",
    "api_key_env": None,
    "models": {},
    "priority": 0,
    "weight": 1,
    "max_concurrency": None,
    "enabled": True,
    "draining": False,
    "api_key_hint": None,
    "gpus": None,
}


def _check(field: str) -> ModelFieldValidator:
    return ModelFieldValidator(ProviderConfig, field, _SAMPLE)


def parse_models(text: str) -> dict[str, str]:
    """`PUBLIC=UPSTREAM, PUBLIC2` -> {public: upstream}; a bare name maps to itself."""
    mapping: dict[str, str] = {}
    for spec in split_list(text):
        public, _, upstream = spec.partition("=")
        mapping[public.strip()] = upstream.strip() or public.strip()
    return mapping


def format_models(models: dict[str, str]) -> str:
    return ", ".join(public if public == upstream else f"{public}={upstream}" for public, upstream in models.items())


def describe_test(result: ProbeAnswer) -> str:
    """What the test found, in words: a connect failure without its error kind (ctrl+o shows the full answer)."""
    lines = [f"{result['health']}: {without_error_kind(result['detail']) if result['detail'] else 'no detail'}"]
    models = result["models"]
    lines.append(f"models: {', '.join(models) if models else 'none discovered'}")
    if result["capacity"]:
        lines.append(f"capacity: {result['capacity']} slot(s)")
    if result["health"] == "down":
        lines.append("ctrl+o shows the detail")
    return "\n".join(lines)


def full_test_answer(result: ProbeAnswer) -> str:
    """Everything the test answered, as corral-core put it."""
    lines = [f"health: {result['health']}", f"detail: {result['detail'] or '-'}"]
    if "raw_detail" in result:
        lines.append(f"error: {result['raw_detail']}")
    mapping = ", ".join(f"{public} -> {upstream}" for public, upstream in result["models"].items())
    lines += [f"models: {mapping or 'none discovered'}", f"capacity: {result['capacity'] or '-'}"]
    return "\n".join(lines)


class ProviderForm(FormScreen[ProviderView]):
    """Dismisses with the provider summary corral-core returns, or None when cancelled.

    Edit mode (`provider=` a summary dict): the name is read-only, an empty key value keeps the stored key.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "test", "Test", id="provider.test", tooltip="Probe this configuration without saving it"),
        Binding(
            "ctrl+o",
            "test_detail",
            "Detail",
            id="provider.test_detail",
            tooltip="Show the last test's full answer (the error as its library put it), or its summary again",
        ),
    ]

    @dataclass
    class Tested(Message):
        result: ProbeAnswer

    @dataclass
    class TestFailed(Message):
        error: CorralError

    def __init__(self, provider: ProviderView | None = None) -> None:
        super().__init__()
        self.provider = provider
        self.editing = provider is not None
        self.last_test: ProbeAnswer | None = None
        self.showing_detail = False

    def compose(self) -> ComposeResult:
        p: ProviderPublicView = self.provider or NEW_PROVIDER
        title = f"Edit provider {p['name']}" if self.editing else "Add provider"
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = title
            with VerticalScroll(classes="form-body", can_focus=False):
                yield form_field(
                    "Name",
                    "name",
                    Input(
                        p["name"],
                        placeholder="e.g. local-llama",
                        id="name",
                        compact=True,
                        disabled=self.editing,
                        validators=[_check("name")],
                    ),
                )
                yield form_field(
                    "Type",
                    "type",
                    Select(
                        [(kind, kind) for kind in PROVIDER_TYPES],
                        value=p["type"],
                        allow_blank=False,
                        id="type",
                        compact=True,
                    ),
                )
                yield form_field(
                    "Base URL",
                    "base_url",
                    Input(
                        p["base_url"],
                        placeholder="http://127.0.0.1:8080",
                        id="base_url",
                        compact=True,
                        validators=[_check("base_url")],
                    ),
                )
                yield form_field(
                    "API key env var",
                    "api_key_env",
                    Input(
                        p["api_key_env"] or "",
                        placeholder="e.g. OPENAI_API_KEY (read by corral-core)",
                        id="api_key_env",
                        compact=True,
                        valid_empty=True,
                        validators=[_check("api_key_env")],
                    ),
                )
                key_hint = f"stored key {p['api_key_hint']}; leave empty to keep it" if p["api_key_hint"] else ""
                yield form_field(
                    "…or key value",
                    "api_key",
                    Input(placeholder="the upstream key itself", password=True, id="api_key", compact=True),
                    hint=key_hint,
                )
                # The summary cannot tell configured models from discovered ones, so editing starts empty.
                serving = f"serving {format_models(p['models'])}; leave empty to keep" if p["models"] else ""
                yield form_field(
                    "Models",
                    "models",
                    Input(placeholder="PUBLIC=UPSTREAM, … (empty: discover)", id="models", compact=True),
                    hint=serving,
                )
                yield form_field(
                    "Priority",
                    "priority",
                    integer_input("priority", _check("priority"), str(p["priority"])),
                    hint="higher tiers are tried first",
                )
                yield form_field(
                    "Weight",
                    "weight",
                    integer_input("weight", _check("weight"), str(p["weight"])),
                )
                yield form_field(
                    "Max concurrency",
                    "max_concurrency",
                    integer_input(
                        "max_concurrency",
                        _check("max_concurrency"),
                        str(p["max_concurrency"] or ""),
                        placeholder="empty: no limit",
                    ),
                )
                yield form_field(
                    "Enabled",
                    "enabled",
                    Checkbox("route requests to it", p["enabled"], id="enabled", compact=True),
                )
            # Below the fields, not among them: the test's answer stays in view however far the form scrolls.
            yield Static(
                "Test (ctrl+t) probes this configuration without saving it.",
                id="test-result",
                classes="panel",
                markup=False,  # an error's own text may hold [brackets]
            )
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="buttons"):
                yield Button("Test", id="test", compact=True)
                yield Button("Save", id="save", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#base_url" if self.editing else "#name", Input).focus()

    # -- the fields as the API wants them -----------------------------------------------------------------

    def _text(self, name: str) -> str:
        return self.query_one(f"#{name}", Input).value.strip()

    def fields(self) -> dict[str, Any]:
        """The form as add_provider/test_provider_config fields; in edit mode, as update_provider changes."""
        fields: dict[str, Any] = {
            "type": self.query_one("#type", Select).value,
            "base_url": self._text("base_url"),
            "priority": optional_int(self._text("priority")) or 0,
            "weight": optional_int(self._text("weight")) or 1,
            "max_concurrency": optional_int(self._text("max_concurrency")),
            "enabled": self.query_one("#enabled", Checkbox).value,
        }
        if self._text("models") or not self.editing:
            fields["models"] = parse_models(self._text("models"))
        env, key = self._text("api_key_env"), self.query_one("#api_key", Input).value
        if env or key:
            # One source at a time: setting one clears the other, which the daemon requires.
            fields.update(api_key_env=env or None, api_key=key or None)
        elif self.editing:
            fields["api_key_env"] = None  # an empty key value keeps the stored key
        if not self.editing:
            fields = {"name": self._text("name"), **{k: v for k, v in fields.items() if v is not None}}
        return fields

    # -- save ---------------------------------------------------------------------------------------------

    def submit(self) -> None:
        self.save_provider(self.fields())

    @work(exclusive=True, group="provider-save")
    async def save_provider(self, fields: dict[str, Any]) -> None:
        client = self.host.client
        try:
            if self.provider is not None:
                summary = await client.update_provider(self.provider["name"], **fields)
            else:
                summary = await client.add_provider(**fields)
        except CorralError as error:
            self.post_message(self.Refused(error))
            return
        self.post_message(self.Saved(summary))

    # -- test ---------------------------------------------------------------------------------------------

    def action_test(self) -> None:
        # The name does not matter to a probe, so a missing one does not stop a test.
        if self.invalid_inputs(skip=frozenset({"name"})):
            self.show_form_error("fix the marked fields before testing")
            return
        self.show_form_error("")
        name_field = self.query_one("#name", Input)
        name = name_field.value.strip() if name_field.is_valid and name_field.value.strip() else "untitled"
        fields = {key: value for key, value in {**self.fields(), "name": name}.items() if value is not None}
        panel = self.query_one("#test-result", Static)
        panel.update(f"testing {fields['base_url']} …")
        panel.set_classes("panel -busy")
        self.test_config(fields)

    @work(exclusive=True, group="provider-test")
    async def test_config(self, fields: dict[str, Any]) -> None:
        try:
            result = await self.host.client.test_provider_config(**fields)
        except CorralError as error:
            self.post_message(self.TestFailed(error))
            return
        self.post_message(self.Tested(result))

    def on_provider_form_tested(self, event: ProviderForm.Tested) -> None:
        self.last_test, self.showing_detail = event.result, False
        panel = self.query_one("#test-result", Static)
        panel.update(describe_test(event.result))
        panel.set_classes(f"panel -{event.result['health']}")

    def action_test_detail(self) -> None:
        if self.last_test is None:
            self.notify("Test first (ctrl+t): the detail is the test's full answer.", severity="warning")
            return
        self.showing_detail = not self.showing_detail
        shown = full_test_answer if self.showing_detail else describe_test
        self.query_one("#test-result", Static).update(shown(self.last_test))

    def on_provider_form_test_failed(self, event: ProviderForm.TestFailed) -> None:
        panel = self.query_one("#test-result", Static)
        panel.update(f"test refused: {event.error.message}")
        panel.set_classes("panel -failed")
