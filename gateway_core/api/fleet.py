"""Admin routes for the fleet: GPUs' deployments, the GGUF catalog, compose files and systemd units."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway_core.api.admin_models import read_json
from gateway_core.api.responses import json_response
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.fleet_views import CatalogAnswer, PlanAnswer, SystemdActionAnswer, UnitStatusView
from gateway_core.contracts.views import Removed
from gateway_core.fleet.compose import ComposeError
from gateway_core.fleet.containers import (
    DeploymentConflict,
    DeploymentFailed,
    DeploymentNotFound,
    EngineUnavailable,
    FleetError,
)
from gateway_core.fleet.manager import DEFAULT_HEALTH_TIMEOUT_S, FleetInputError, FleetManager
from gateway_core.fleet.models import scan
from gateway_core.fleet.systemd import SystemdManager, SystemdUnavailable, UnitStatus, render_unit
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
    if isinstance(error, DeploymentFailed):
        logs = f"\n--- last log lines ---\n{error.logs}" if getattr(error, "logs", "") else ""
        return GatewayError(502, f"{error}{logs}", code="deployment_failed")
    return GatewayError(500, str(error), code="fleet_error")


def fleet_errors(endpoint: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (FleetError, FleetInputError, ComposeError, SystemdUnavailable, ValueError) as error:
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


class FleetApi:
    """The fleet routes' handlers: the fleet manager does the work, the registry knows the providers' names."""

    def __init__(self, *, fleet: FleetManager, registry: ProviderRegistry, data_dir: Path) -> None:
        self._fleet = fleet
        self._registry = registry
        self._data_dir = data_dir

    def routes(self) -> list[BaseRoute]:
        routes: list[tuple[str, Endpoint, str]] = [
            ("/fleet", self.inventory, "GET"),
            ("/fleet/plan", self.plan, "POST"),
            ("/fleet/deployments", self.deploy, "POST"),
            ("/fleet/deployments/{name}", self.remove, "DELETE"),
            ("/fleet/deployments/{name}/logs", self.logs, "GET"),
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

    async def plan(self, request: Request) -> Response:
        spec, report = self._fleet.plan(await read_json(request))
        answer: PlanAnswer = {"spec": spec.view(), **report}
        return json_response(answer)

    async def deploy(self, request: Request) -> Response:
        body = await read_json(request)
        timeout = float(body.pop("health_timeout_s", DEFAULT_HEALTH_TIMEOUT_S))
        systemd = body.pop("systemd", None)
        name = body.get("name")
        if name:  # a deployment is routed as a provider of its name
            self._registry.refuse_taken_name(name, hint="; pick another --name")
        result = await self._fleet.deploy(body, timeout, systemd)
        return json_response(result, status=200 if "dry_run" in result else 201)

    async def control(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("start", "stop", "restart"):
            raise GatewayError(404, f"unknown action '{action}': use start, stop or restart")
        return json_response(await self._fleet.control(request.path_params["name"], action))

    async def remove(self, request: Request) -> Response:
        await self._fleet.remove(request.path_params["name"])
        removed: Removed = {"removed": request.path_params["name"]}
        return json_response(removed)

    async def logs(self, request: Request) -> Response:
        name = request.path_params["name"]
        if _flag(request, "follow"):
            lines = await self._fleet.follow_logs(name)

            async def stream() -> AsyncIterator[bytes]:
                async for line in lines:
                    yield (line + "\n").encode()

            return StreamingResponse(stream(), media_type="text/plain")
        tail = int(request.query_params.get("tail", "200"))
        return PlainTextResponse(await self._fleet.logs(name, tail))

    async def get_compose(self, request: Request) -> Response:
        return PlainTextResponse(await self._fleet.export_compose(), media_type="application/yaml")

    async def post_compose(self, request: Request) -> Response:
        text = (await request.body()).decode("utf-8", errors="replace")
        timeout = float(request.query_params.get("health_timeout_s", DEFAULT_HEALTH_TIMEOUT_S))
        return json_response(await self._fleet.import_compose(text, timeout), status=201)

    async def catalog(self, request: Request) -> Response:
        dirs = [Path(d) for d in request.query_params.getlist("dir")] or models_dirs(self._data_dir)
        answer: CatalogAnswer = {**scan(dirs).to_dict(), "directories": [str(d) for d in dirs]}
        return json_response(answer)

    async def systemd_unit(self, request: Request) -> Response:
        body = await read_json(request)
        options = body.pop("systemd", {}) or {}
        spec, _ = self._fleet.plan({**body, "kind": "systemd"})
        binary = llama_server_binary(options.get("binary"))  # the rule `fleet install` follows too
        unit = render_unit(spec, binary, user=bool(options.get("user")), log_dir=options.get("log_dir"))
        return PlainTextResponse(unit)

    async def systemd_action(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        manager = SystemdManager(user=_flag(request, "user"))
        if action == "status":
            status = await asyncio.to_thread(manager.status, name)
            return json_response(_unit_status_view(status))
        operations = {"start": manager.start, "stop": manager.stop, "restart": manager.restart}
        if action not in operations:
            raise GatewayError(404, f"unknown action '{action}': use start, stop, restart or status")
        await asyncio.to_thread(operations[action], name)
        done: SystemdActionAnswer = {"name": name, "action": action}
        return json_response(done)
