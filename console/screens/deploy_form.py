"""Deploy a GGUF as a llama-server container, with corral-core's VRAM plan redrawn as the form changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Checkbox, Input, OptionList, Select, SelectionList, Static
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

from console.format import format_bytes, plan_headline, plan_lines
from console.screens.form_base import FormScreen, ModelFieldValidator, form_field, integer_input, optional_int
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError
from gateway_core.contracts.fleet_views import (
    CatalogAnswer,
    DeployAnswer,
    GgufModelView,
    GpuDeviceView,
    GpuSnapshotView,
    PlanAnswer,
)
from gateway_core.fleet.deployment import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_GPU_IMAGE,
    DeploymentSpec,
    default_context,
    preferred_image,
)
from gateway_core.fleet.load_policy import LoadPolicy, format_duration, parse_duration

PLAN_DEBOUNCE_S = 0.3
_SAMPLE = {"name": "sample", "model_path": "/models/sample.gguf", "port": 8081}
GPU_MODES = [("all GPUs", "all"), ("none (CPU only)", "none"), ("the GPUs ticked below", "chosen")]
POLICY_FIELDS = ("idle_ttl-field", "pin-field", "priority-field")  # shown only while "On demand" is ticked


def _check(field: str) -> ModelFieldValidator:
    return ModelFieldValidator(DeploymentSpec, field, _SAMPLE)


class DurationValidator(Validator):
    """A duration as the daemon reads it (parse_duration: 600, 90s, 10m, 1h30m), within the policy's bounds."""

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.success()
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            return self.failure(str(error), value)
        try:
            LoadPolicy.model_validate({self.field: seconds})
        except ValidationError as error:
            return self.failure(f"{format_duration(seconds)}: {error.errors()[0]['msg']}", value)
        return self.success()


def describe_model(model: GgufModelView) -> str:
    ctx = model["context_length"]
    return (
        f"{model['name'][:30]:<30} {model['quantization'][:12]:<12} {format_bytes(model['file_size']):>11}"
        f"  ctx {ctx if ctx else '?'}"
    )


def describe_gpu(device: GpuDeviceView) -> str:
    total, used = device["memory_total_bytes"], device["memory_used_bytes"]
    free = f", {format_bytes(total - used)} free" if total is not None and used is not None else ""
    return f"GPU {device['index']}: {device['name'] or '?'}{free}"


def free_gpu_bytes(gpus: GpuSnapshotView, chosen: object) -> int | None:
    """The free memory of the GPUs a plan's spec runs on (`chosen`: "all", indices or None); None on the CPU."""
    if chosen is None:
        return None
    devices = [d for d in gpus["devices"] if chosen == "all" or (isinstance(chosen, list) and d["index"] in chosen)]
    known = [(d["memory_total_bytes"], d["memory_used_bytes"]) for d in devices]
    return sum(total - used for total, used in known if total is not None and used is not None)


def describe_images(images: list[str]) -> str:
    if not images:
        return (
            f"no llama-server image on this Docker engine: run `docker pull {DEFAULT_CPU_IMAGE}`"
            f" (or {DEFAULT_GPU_IMAGE.rpartition(':')[2]} for NVIDIA GPUs) where a registry is reachable"
        )
    return f"on this engine: {', '.join(images[:3])}" + (f" and {len(images) - 3} more" if len(images) > 3 else "")


def describe_plan(plan: PlanAnswer) -> str:
    """The same text as `corral fleet deploy --plan`, less the warnings the form shows apart."""
    return "\n".join([plan_headline(plan["spec"]), *plan_lines(plan)])


class DeployForm(FormScreen[DeployAnswer]):
    """Dismisses with corral-core's deploy result ({deployment, estimate, placement, warnings}), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Deploy", id="form.save", tooltip="Deploy, then wait until llama-server is healthy"),
    ]

    @dataclass
    class Catalogued(Message):
        catalog: CatalogAnswer

    @dataclass
    class CatalogFailed(Message):
        error: CorralError

    @dataclass
    class Planned(Message):
        plan: PlanAnswer

    @dataclass
    class ImagesListed(Message):
        images: list[str]

    @dataclass
    class ImagesFailed(Message):
        error: CorralError

    @dataclass
    class PlanFailed(Message):
        error: CorralError

    def __init__(self, model_path: str | None = None, *, health_timeout_s: float = 300.0) -> None:
        super().__init__()
        self.model_path = model_path
        self.health_timeout_s = health_timeout_s
        self.plan: PlanAnswer | None = None
        self._plan_timer: Timer | None = None
        self._auto_name = ""  # the name last filled in from the plan, replaced when the model changes
        self._auto_ctx = ""  # the context last filled in from the model and the plan, likewise
        self._auto_image = ""  # the image last picked from the engine's, replaced when the GPU mode changes
        self.images: list[str] | None = None  # the engine's llama-server images, once listed
        self._models: dict[str, GgufModelView] = {}
        self._plan_error_field = ""

    def compose(self) -> ComposeResult:
        gpus = self.host.live.gpus
        devices = gpus["devices"]
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = "Deploy a model"
            with VerticalScroll(classes="form-body", can_focus=False):
                yield Static("reading the model catalog…", id="catalog-status", classes="hint")
                yield OptionList(id="catalog")
                yield Static("", id="model_path-error", classes="field-error")
                yield form_field(
                    "Name",
                    "name",
                    Input(
                        placeholder="from the file name",
                        id="name",
                        compact=True,
                        valid_empty=True,
                        validators=[_check("name")],
                    ),
                    hint="also the public model name",
                )
                gpu_hint = "" if devices else f"no GPU: {gpus['reason'] or 'none found'}"
                yield form_field(
                    "GPUs",
                    "gpus",
                    Select(GPU_MODES, value="all" if devices else "none", allow_blank=False, id="gpus", compact=True),
                    hint=gpu_hint,
                )
                with Horizontal(classes="field-line", id="gpu-list-line") as line:
                    line.display = bool(devices)
                    yield Static("", classes="field-label")
                    yield SelectionList[int](
                        *(Selection(describe_gpu(d), d["index"], True) for d in devices), id="gpu-list", disabled=True
                    )
                yield form_field(
                    "Context size",
                    "ctx_size",
                    integer_input("ctx_size", _check("ctx_size"), placeholder="tokens, shared by all slots"),
                    hint="the model's trained context, as far as it fits",
                )
                yield form_field(
                    "Parallel slots",
                    "parallel",
                    integer_input("parallel", _check("parallel"), placeholder="1"),
                )
                yield form_field(
                    "Port",
                    "port",
                    integer_input("port", _check("port"), placeholder="first free from 8081"),
                )
                yield form_field(
                    "Image",
                    "image",
                    Input(placeholder="llama.cpp's server image", id="image", compact=True),
                    hint="looking for llama-server images on the Docker engine…",
                )
                yield form_field(
                    "On demand",
                    "on_demand",
                    Checkbox("start it on a request, stop it when idle", False, id="on_demand", compact=True),
                    hint="stopped when idle or to make room on its GPUs; its model stays routable",
                )
                yield form_field(
                    "Idle TTL",
                    "idle_ttl",
                    Input(
                        placeholder="10m (stopped after this long unused)",
                        id="idle_ttl",
                        compact=True,
                        valid_empty=True,
                        validators=[DurationValidator("idle_ttl_s")],
                    ),
                )
                yield form_field(
                    "Pin",
                    "pin",
                    Checkbox("never stop it to make room for another", False, id="pin", compact=True),
                )
                yield form_field(
                    "Priority",
                    "priority",
                    integer_input(
                        "priority",
                        ModelFieldValidator(LoadPolicy, "priority", {}),
                        placeholder="0 (the lowest is stopped first)",
                    ),
                )
                yield Static("pick a model to see how much memory it needs", id="plan", classes="panel")
                yield Static("", id="warnings", classes="warnings")
                yield Static("", id="deploy-status", classes="panel")
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="buttons"):
                yield Button("Deploy", id="save", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#deploy-status").display = False
        self._show_policy(False)
        self.query_one("#catalog", OptionList).focus()
        self.load_catalog()
        self.load_images()

    # -- catalog ------------------------------------------------------------------------------------------

    @work(exclusive=True, group="deploy-catalog")
    async def load_catalog(self) -> None:
        try:
            self.post_message(self.Catalogued(await self.host.client.catalog()))
        except CorralError as error:
            self.post_message(self.CatalogFailed(error))

    def on_deploy_form_catalogued(self, event: DeployForm.Catalogued) -> None:
        models = event.catalog["models"]
        catalog = self.query_one("#catalog", OptionList)
        catalog.clear_options()
        catalog.add_options([Option(describe_model(model), id=model["path"]) for model in models])
        self._models = {model["path"]: model for model in models}
        where = ", ".join(event.catalog["directories"]) or "the model directories"
        problems = event.catalog["problems"]
        status = (
            f"{len(models)} model(s) in {where}"
            if models
            else (f"no .gguf files in {where}: copy models there or set CORRAL_MODELS_DIRS")
        )
        if problems:
            status += f"; {len(problems)} file(s) unreadable: " + "; ".join(
                f"{p['path']}: {p['message']}" for p in problems[:3]
            )
        self.query_one("#catalog-status", Static).update(status)
        paths = [model["path"] for model in models]
        if paths:
            catalog.highlighted = paths.index(self.model_path) if self.model_path in paths else 0

    @work(exclusive=True, group="deploy-images")
    async def load_images(self) -> None:
        try:
            self.post_message(self.ImagesListed(await self.host.client.llama_server_images()))
        except CorralError as error:
            self.post_message(self.ImagesFailed(error))

    def on_deploy_form_images_listed(self, event: DeployForm.ImagesListed) -> None:
        self.images = event.images
        self.query_one("#image-field .field-hint", Static).update(describe_images(event.images))
        self._pick_image()

    def on_deploy_form_images_failed(self, event: DeployForm.ImagesFailed) -> None:
        self.query_one("#image-field .field-hint", Static).update(
            f"cannot list the engine's images: {event.error.message}"
        )

    def _pick_image(self) -> None:
        """The engine's llama-server image for the GPU mode, unless the operator typed one."""
        field = self.query_one("#image", Input)
        if self.images is None or field.value.strip() not in ("", self._auto_image):
            return
        self._auto_image = preferred_image(self.images, self.query_one("#gpus", Select).value != "none") or ""
        field.value = self._auto_image

    def on_deploy_form_catalog_failed(self, event: DeployForm.CatalogFailed) -> None:
        self.query_one("#catalog-status", Static).update(f"cannot read the catalog: {event.error.message}")

    @on(OptionList.OptionHighlighted, "#catalog")
    def model_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.model_path:
            self.model_path = event.option.id
            self.show_error("model_path", "")
            if self.query_one("#name", Input).value.strip() == self._auto_name:
                self._auto_name = ""  # let the plan name it after the new model
                self.query_one("#name", Input).value = ""
            self._fill_context(None, None)
            self.schedule_plan()

    @on(OptionList.OptionSelected, "#catalog")
    def model_chosen(self) -> None:
        self.focus_next()

    # -- planning -----------------------------------------------------------------------------------------

    def field_changed(self, field: Input) -> None:
        if not (field.id == "name" and field.value == self._auto_name):
            self.schedule_plan()

    @on(Select.Changed, "#gpus")
    def gpu_mode_changed(self, event: Select.Changed) -> None:
        self.query_one("#gpu-list", SelectionList).disabled = event.value != "chosen"
        self._pick_image()
        self.schedule_plan()

    @on(SelectionList.SelectedChanged, "#gpu-list")
    def gpus_ticked(self) -> None:
        self.schedule_plan()

    @on(Checkbox.Changed, "#on_demand")
    def on_demand_changed(self, event: Checkbox.Changed) -> None:
        self._show_policy(event.value)
        self.schedule_plan()

    @on(Checkbox.Changed, "#pin")
    def pin_changed(self) -> None:
        self.schedule_plan()

    def _show_policy(self, on: bool) -> None:
        for field in POLICY_FIELDS:
            self.query_one(f"#{field}").display = on

    @property
    def on_demand(self) -> bool:
        return self.query_one("#on_demand", Checkbox).value

    def _checked_inputs(self) -> list[Input]:
        """The inputs that count: a policy field hidden with "On demand" off is not sent, so not checked."""
        hidden = {"idle_ttl", "priority"} if not self.on_demand else set()
        return [field for field in self.query(Input) if field.id not in hidden]

    def refuse_invalid(self) -> bool:
        invalid = self.invalid_inputs(skip=frozenset() if self.on_demand else frozenset({"idle_ttl", "priority"}))
        if invalid:
            self.show_form_error(f"fix the {len(invalid)} marked field(s) first")
            invalid[0].focus()
        return bool(invalid)

    def schedule_plan(self) -> None:
        """Plan once the user pauses, not on every key."""
        if self._plan_timer is not None:
            self._plan_timer.stop()
        self._plan_timer = self.set_timer(PLAN_DEBOUNCE_S, self.request_plan)

    def fields(self) -> dict[str, Any]:
        """The form as plan_deployment/deploy fields; empty fields are left to corral-core's defaults."""
        mode = self.query_one("#gpus", Select).value
        gpus: Any = {"all": "all", "none": None}.get(str(mode), self.query_one("#gpu-list", SelectionList).selected)
        fields: dict[str, Any] = {"model_path": self.model_path, "gpus": gpus}
        name = self.query_one("#name", Input).value.strip()
        if name and name != self._auto_name:
            fields["name"] = name
        for key in ("ctx_size", "parallel", "port"):
            value = optional_int(self.query_one(f"#{key}", Input).value)
            if value is not None:
                fields[key] = value
        if image := self.query_one("#image", Input).value.strip():
            fields["image"] = image
        if self.on_demand:
            fields["load"] = self.load_policy()
        return fields

    def load_policy(self) -> dict[str, Any]:
        """The spec's `load` from the policy fields; an empty one is left to the daemon's default."""
        load: dict[str, Any] = {"mode": "on-demand", "pin": self.query_one("#pin", Checkbox).value}
        if ttl := self.query_one("#idle_ttl", Input).value.strip():
            load["idle_ttl_s"] = parse_duration(ttl)
        priority = optional_int(self.query_one("#priority", Input).value)
        if priority is not None:
            load["priority"] = priority
        return load

    def request_plan(self) -> None:
        if not self.model_path or not all(field.is_valid for field in self._checked_inputs()):
            return
        self.plan_deployment(self.fields())

    @work(exclusive=True, group="deploy-plan")
    async def plan_deployment(self, fields: dict[str, Any]) -> None:
        try:
            self.post_message(self.Planned(await self.host.client.plan_deployment(**fields)))
        except CorralError as error:
            self.post_message(self.PlanFailed(error))

    def on_deploy_form_planned(self, event: DeployForm.Planned) -> None:
        self.plan = event.plan
        if self._plan_error_field:
            self.show_error(self._plan_error_field, "")
            self._plan_error_field = ""
        plan = self.query_one("#plan", Static)
        plan.update(describe_plan(event.plan))
        plan.set_classes("panel -fits" if event.plan["placement"]["fits"] else "panel -warning")
        warnings = event.plan["warnings"]
        self.query_one("#warnings", Static).update("\n".join(f"⚠ {warning}" for warning in warnings))
        name = self.query_one("#name", Input)
        if not name.value.strip() or name.value.strip() == self._auto_name:
            self._auto_name = event.plan["spec"]["name"]
            name.value = self._auto_name
        self._fill_context(event.plan, free_gpu_bytes(self.host.live.gpus, event.plan["spec"]["gpus"]))

    def _fill_context(self, plan: PlanAnswer | None, free_bytes: int | None) -> None:
        """The model's trained context, capped by the plan's fit, unless the operator typed a context; a change
        plans again (the field's change does)."""
        field = self.query_one("#ctx_size", Input)
        model = self._models.get(self.model_path or "")
        if model is None or field.value.strip() not in ("", self._auto_ctx):
            return
        estimate = plan["estimate"] if plan else None
        gpus = plan["spec"]["gpus"] if plan else ("all" if self.host.live.gpus["devices"] else None)
        free = free_bytes if plan else free_gpu_bytes(self.host.live.gpus, gpus)
        context = str(default_context(model["context_length"], estimate, free))
        if context != field.value:
            self._auto_ctx = field.value = context

    def on_deploy_form_plan_failed(self, event: DeployForm.PlanFailed) -> None:
        self.plan = None
        field = (event.error.param or "").split(".")[0]
        if field and self.query(f"#{field}-error"):
            self._plan_error_field = field
            self.show_error(field, event.error.message)
        plan = self.query_one("#plan", Static)
        plan.update(f"cannot plan: {event.error.message}")
        plan.set_classes("panel -failed")
        self.query_one("#warnings", Static).update("")

    # -- deploying ----------------------------------------------------------------------------------------

    def action_save(self) -> None:
        if not self.model_path:
            self.show_error("model_path", "pick a model from the list first")
            return
        super().action_save()

    def action_cancel(self) -> None:
        if self.saving:
            self.notify(
                "corral-core carries on with the deployment; the fleet view shows how it ends", severity="warning"
            )
        super().action_cancel()

    def submit(self) -> None:
        fields = self.fields()
        name = self.query_one("#name", Input).value.strip()
        if name:
            fields["name"] = name
        status = self.query_one("#deploy-status", Static)
        status.update(
            f"deploying {name or 'the model'}: starting llama-server, then waiting for health "
            f"(up to {self.health_timeout_s:g} s while it loads the model)…"
        )
        status.set_classes("panel -busy")
        status.display = True
        status.scroll_visible()
        self.deploy(fields)

    @work(exclusive=True, group="deploy-save")
    async def deploy(self, fields: dict[str, Any]) -> None:
        try:
            result = await self.host.client.deploy(self.health_timeout_s, **fields)
        except CorralError as error:
            self.post_message(self.Refused(error))
            return
        self.post_message(self.Saved(result))

    def refused(self, error: CorralError) -> None:
        """A failed deployment's message carries llama-server's last log lines: show all of it in the form."""
        super().refused(error)
        status = self.query_one("#deploy-status", Static)
        status.update(f"deploy failed: {error.message}")
        status.set_classes("panel -failed")
        status.display = True
        status.scroll_visible()
