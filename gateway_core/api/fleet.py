"""Admin routes for the fleet: GPUs' deployments, the GGUF catalog, compose files and systemd units."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway_core.api.admin_models import read_json, validation_error
from gateway_core.api.detail_routes import DETAIL_PATH, DeploymentDetailRoutes
from gateway_core.api.responses import json_response
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.fleet_views import CatalogAnswer, PlanAnswer, SystemdActionAnswer, UnitStatusView
from gateway_core.contracts.instants import InstantError, parse_instant
from gateway_core.contracts.views import Removed
from gateway_core.fleet.compose import ComposeError
from gateway_core.fleet.containers import (
    DeploymentConflict,
    DeploymentFailed,
    DeploymentNotFound,
    EngineUnavailable,
    FleetError,
)
from gateway_core.fleet.deployment import DeploymentSpec, SystemdOptions
from gateway_core.fleet.load_policy import policy_fields
from gateway_core.fleet.manager import DEFAULT_HEALTH_TIMEOUT_S, FleetInputError, FleetManager
from gateway_core.fleet.models import scan
from gateway_core.fleet.on_demand import OnDemand
from gateway_core.fleet.systemd import (
    SystemdCommandError,
    SystemdManager,
    SystemdUnavailable,
    UnitStatus,
    render_unit,
)
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.settings import BinaryNotFound, llama_server_binary, models_dirs

Endpoint = Callable[[Request], Awaitable[Response]]


def _as_gateway_error(error: Exception) -> GatewayError:
    if isinstance(error, FleetInputError | BinaryNotFound):
        return GatewayError(400, str(error), param=error.param, code="invalid_deployment")
    if isinstance(error, ComposeError | ValueError):
        return GatewayError(400, str(error), code="invalid_input")
    if isinstance(error, DeploymentNotFound):
        return GatewayError(404, str(error), code="deployment_not_found")
    if isinstance(error, DeploymentConflict):
        return GatewayError(409, str(error), code="deployment_conflict")
    if isinstance(error, EngineUnavailable | SystemdUnavailable):
        return GatewayError(503, str(error), code="engine_unavailable")
    if isinstance(error, SystemdCommandError):
        return GatewayError(502, f"systemctl refused: {error}", code="systemctl_failed")
    if isinstance(error, DeploymentFailed):
        logs = f"\n--- last log lines ---\n{error.logs}" if getattr(error, "logs", "") else ""
        return GatewayError(502, f"{error}{logs}", code="deployment_failed")
    return GatewayError(500, str(error), code="fleet_error")


def fleet_errors(endpoint: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (
            FleetError,
            FleetInputError,
            ComposeError,
            SystemdUnavailable,
            SystemdCommandError,
            ValueError,
        ) as error:
            raise _as_gateway_error(error) from error

    return wrapped


def _unit_status_view(status: UnitStatus) -> UnitStatusView:
    return {
        "unit": status.unit,
        "active_state": status.active_state,
        "sub_state": status.sub_state,
        "main_pid": status.main_pid,
        "started_at": status.started_at,
        "restarts": status.restarts,
        "result": status.result,
        "load_state": status.load_state,
        "running": status.running,
    }


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name) in ("1", "true")


def _invalid(param: str, message: str) -> GatewayError:
    return GatewayError(400, f"{param}: {message}", param=param, code="invalid_field")


def _seconds(value: object, param: str) -> float:
    """A timeout from a body or a query string: a finite number of seconds above 0 (null: the default)."""
    if value is None:
        return DEFAULT_HEALTH_TIMEOUT_S
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise _invalid(param, f"{value!r} is not a number of seconds above 0, such as 300")
    return seconds


def _count(text: str, param: str) -> int:
    """A whole number from a query string, 0 or more."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise _invalid(param, f"{text!r} is not a whole number of 0 or more, such as 200")
    return number


def _systemd_options(value: object) -> SystemdOptions:
    if value is None:
        return SystemdOptions()
    try:
        return SystemdOptions.model_validate(value)
    except ValidationError as error:
        raise validation_error(error, prefix="systemd") from error


def _deployment_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Checked here because the fleet manager's plan lets them through: an unknown field that is null (it drops
    null fields, which mean "the default"), and a model path under the home of a user who does not exist."""
    for name in body:
        if name not in DeploymentSpec.model_fields:
            known = ", ".join(DeploymentSpec.model_fields)
            raise _invalid(name, f"not a deployment field; a deployment takes {known}")
    load = body.get("load")
    if isinstance(load, dict):
        body = {**body, "load": policy_fields(load, "load.")}
    path = body.get("model_path")
    if isinstance(path, str) and path.startswith("~"):
        try:
            Path(path).expanduser()
        except RuntimeError:
            raise _invalid(
                "model_path", f"{path!r} names a home directory not known here; give an absolute path"
            ) from None
    return body


def _catalog_dirs(dirs: list[str]) -> list[Path]:
    for directory in dirs:
        if not Path(directory).is_absolute():  # "" too, which would scan the daemon's working directory
            raise _invalid(
                "dir",
                f"{directory!r} is not an absolute path; the daemon would read it from its own working directory, "
                "not the caller's",
            )
    return [Path(directory) for directory in dirs]


def _follow_options(request: Request) -> dict[str, Any]:
    """A followed log's start: `tail` lines (default 200, `all` for every one) since `since` (7d, 15m, ISO, Unix
    seconds), each line stamped with its RFC 3339 time when `timestamps=1`."""
    params = request.query_params
    tail_text = params.get("tail", "200")
    since_text = params.get("since")
    try:
        since = parse_instant(since_text, time.time()) if since_text else None
    except InstantError as error:
        raise _invalid("since", str(error)) from None
    return {
        "tail": None if tail_text == "all" else _count(tail_text, "tail"),
        "since": since,
        "timestamps": _flag(request, "timestamps"),
    }


class FleetApi:
    """The fleet routes' handlers: the fleet manager does the work, the registry knows the providers' names."""

    def __init__(self, *, fleet: FleetManager, registry: ProviderRegistry, on_demand: OnDemand, data_dir: Path) -> None:
        self._fleet = fleet
        self._registry = registry
        self._on_demand = on_demand
        self._data_dir = data_dir
        self._detail = DeploymentDetailRoutes(fleet)

    def routes(self) -> list[BaseRoute]:
        routes: list[tuple[str, Endpoint, str]] = [
            ("/fleet", self.inventory, "GET"),
            ("/fleet/images", self.images, "GET"),
            ("/fleet/plan", self.plan, "POST"),
            ("/fleet/deployments", self.deploy, "POST"),
            ("/fleet/deployments/{name}", self.remove, "DELETE"),
            ("/fleet/deployments/{name}/logs", self.logs, "GET"),
            (DETAIL_PATH, self._detail.detail, "GET"),
            ("/fleet/deployments/{name}/drain", self.drain, "POST"),  # before {action}, which would take it
            ("/fleet/deployments/{name}/undrain", self.undrain, "POST"),
            ("/fleet/deployments/{name}/{action}", self.control, "POST"),
            ("/fleet/compose", self.get_compose, "GET"),
            ("/fleet/compose", self.post_compose, "POST"),
            ("/fleet/systemd/unit", self.systemd_unit, "POST"),
            ("/fleet/systemd/{name}/{action}", self.systemd_action, "POST"),
            ("/catalog", self.catalog, "GET"),
        ]
        return [Route(path, fleet_errors(endpoint), methods=[method]) for path, endpoint, method in routes]

    async def inventory(self, request: Request) -> Response:
        return json_response(await self._fleet.inventory())

    async def images(self, request: Request) -> Response:
        return json_response(await self._fleet.llama_server_images())

    async def plan(self, request: Request) -> Response:
        spec, report = self._fleet.plan(_deployment_fields(await read_json(request)))
        answer: PlanAnswer = {"spec": spec.view(), **report}
        return json_response(answer)

    async def deploy(self, request: Request) -> Response:
        body = await read_json(request)
        timeout = _seconds(body.pop("health_timeout_s", None), "health_timeout_s")
        options = _systemd_options(body.pop("systemd", None))
        fields = _deployment_fields(body)
        name = fields.get("name")
        if isinstance(name, str) and name:  # a deployment is routed as a provider of its name
            self._registry.refuse_taken_name(name, hint="; pick another --name")
        load = fields.get("load")
        on_demand = isinstance(load, dict) and load.get("mode") == "on-demand"
        # An on-demand deployment is created cold and then loaded through OnDemand, which makes room for it.
        result = await self._fleet.deploy(fields, timeout, options.model_dump(), start=not on_demand)
        if "deployment" in result:
            await self._fleet.refresh_now()  # so OnDemand knows it before this answer is read
            self._on_demand.refresh()
            if on_demand:
                deployed = result["deployment"]["name"]
                try:
                    await self._on_demand.load(deployed)
                except GatewayError as error:  # deployed all the same: cold or failed, loaded by a request
                    result["warnings"].append(f"created, but its first load did not succeed: {error.message}")
                if "container" in result["deployment"]:  # its state now, started
                    result["deployment"] = await self._fleet.container_view(deployed)
        return json_response(result, status=200 if "dry_run" in result else 201)

    async def control(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("start", "stop", "restart"):
            raise GatewayError(404, f"unknown action '{action}': use start, stop or restart")
        return json_response(await self._fleet.control(request.path_params["name"], action))

    async def drain(self, request: Request) -> Response:
        """Drain the deployment's provider (it is routed under the deployment's name): the provider's view."""
        return json_response(self._registry.drain(self._deployment_provider(request)).summary())

    async def undrain(self, request: Request) -> Response:
        return json_response(self._registry.undrain(self._deployment_provider(request)).summary())

    def _deployment_provider(self, request: Request) -> str:
        name: str = request.path_params["name"]
        if name not in self._registry:
            raise GatewayError(
                404,
                f"no deployment named '{name}' is routed here; `corral fleet list` shows the deployments",
                param="name",
                code="deployment_not_found",
            )
        return name

    async def remove(self, request: Request) -> Response:
        await self._fleet.remove(request.path_params["name"])
        removed: Removed = {"removed": request.path_params["name"]}
        return json_response(removed)

    async def logs(self, request: Request) -> Response:
        name = request.path_params["name"]
        if _flag(request, "follow"):
            lines = await self._fleet.follow_logs(name, **_follow_options(request))

            async def stream() -> AsyncIterator[bytes]:
                async for line in lines:
                    yield (line + "\n").encode()

            return StreamingResponse(stream(), media_type="text/plain")
        tail = _count(request.query_params.get("tail", "200"), "tail")
        return PlainTextResponse(await self._fleet.logs(name, tail))

    async def get_compose(self, request: Request) -> Response:
        return PlainTextResponse(await self._fleet.export_compose(), media_type="application/yaml")

    async def post_compose(self, request: Request) -> Response:
        text = (await request.body()).decode("utf-8", errors="replace")
        timeout = _seconds(request.query_params.get("health_timeout_s"), "health_timeout_s")
        return json_response(await self._fleet.import_compose(text, timeout), status=201)

    async def catalog(self, request: Request) -> Response:
        dirs = _catalog_dirs(request.query_params.getlist("dir")) or models_dirs(self._data_dir)
        answer: CatalogAnswer = {**scan(dirs).to_dict(), "directories": [str(d) for d in dirs]}
        return json_response(answer)

    async def systemd_unit(self, request: Request) -> Response:
        body = await read_json(request)
        options = _systemd_options(body.pop("systemd", None))
        spec, _ = self._fleet.plan(_deployment_fields({**body, "kind": "systemd"}))
        binary = llama_server_binary(options.binary)  # the rule `fleet install` follows too
        unit = render_unit(spec, binary, user=options.user, log_dir=options.log_dir)
        return PlainTextResponse(unit)

    async def systemd_action(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        manager = SystemdManager(user=_flag(request, "user"))
        operations = {"start": manager.start, "stop": manager.stop, "restart": manager.restart}
        if action != "status" and action not in operations:
            raise GatewayError(404, f"unknown action '{action}': use start, stop, restart or status")
        try:
            if action == "status":
                return json_response(_unit_status_view(await asyncio.to_thread(manager.status, name)))
            await asyncio.to_thread(operations[action], name)
        except ValueError as error:  # what SystemdManager raises for a name no unit can have
            raise _invalid("name", str(error)) from error
        done: SystemdActionAnswer = {"name": name, "action": action}
        return json_response(done)
