"""Admin routes for the fleet: GPUs' deployments, the GGUF catalog, compose files and systemd units."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway_core.api.admin_models import read_json
from gateway_core.api.responses import json_response
from gateway_core.contracts.errors import GatewayError
from gateway_core.fleet.compose import ComposeError
from gateway_core.fleet.containers import (
    DeploymentConflict,
    DeploymentFailed,
    DeploymentNotFound,
    EngineUnavailable,
    FleetError,
)
from gateway_core.fleet.manager import DEFAULT_HEALTH_TIMEOUT_S, FleetInputError
from gateway_core.fleet.models import scan
from gateway_core.fleet.systemd import SystemdManager, SystemdUnavailable, render_unit
from gateway_core.state import GatewayState

Endpoint = Callable[[Request], Awaitable[Response]]


def models_dirs(state: GatewayState) -> list[Path]:
    """CORRAL_MODELS_DIRS (colon-separated), else <data-dir>/models."""
    configured = os.environ.get("CORRAL_MODELS_DIRS")
    if configured:
        return [Path(part).expanduser() for part in configured.split(os.pathsep) if part]
    return [state.data_dir / "models"]


def _as_gateway_error(error: Exception) -> GatewayError:
    if isinstance(error, FleetInputError):
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


def fleet_routes(state: GatewayState) -> list[Route]:
    fleet = state.fleet

    async def inventory(request: Request) -> Response:
        return json_response(await fleet.inventory())

    async def plan(request: Request) -> Response:
        spec, report = fleet.plan(await read_json(request))
        return json_response({"spec": spec.model_dump(mode="json"), **report})

    async def deploy(request: Request) -> Response:
        body = await read_json(request)
        timeout = float(body.pop("health_timeout_s", DEFAULT_HEALTH_TIMEOUT_S))
        systemd = body.pop("systemd", None)
        name = body.get("name")
        if name and name in state.providers:
            raise GatewayError(
                409,
                f"a provider named '{name}' already exists; pick another --name",
                param="name",
                code="duplicate_name",
            )
        result = await fleet.deploy(body, timeout, systemd)
        return json_response(result, status=200 if "dry_run" in result else 201)

    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("start", "stop", "restart"):
            raise GatewayError(404, f"unknown action '{action}': use start, stop or restart")
        return json_response(await fleet.control(request.path_params["name"], action))

    async def remove(request: Request) -> Response:
        await fleet.remove(request.path_params["name"])
        return json_response({"removed": request.path_params["name"]})

    async def logs(request: Request) -> Response:
        name = request.path_params["name"]
        if request.query_params.get("follow") in ("1", "true"):
            lines = await fleet.follow_logs(name)

            async def stream() -> AsyncIterator[bytes]:
                async for line in lines:
                    yield (line + "\n").encode()

            return StreamingResponse(stream(), media_type="text/plain")
        tail = int(request.query_params.get("tail", "200"))
        return PlainTextResponse(await fleet.logs(name, tail))

    async def get_compose(request: Request) -> Response:
        return PlainTextResponse(await fleet.export_compose(), media_type="application/yaml")

    async def post_compose(request: Request) -> Response:
        text = (await request.body()).decode("utf-8", errors="replace")
        timeout = float(request.query_params.get("health_timeout_s", DEFAULT_HEALTH_TIMEOUT_S))
        return json_response(await fleet.import_compose(text, timeout), status=201)

    async def catalog(request: Request) -> Response:
        dirs = [Path(d) for d in request.query_params.getlist("dir")] or models_dirs(state)
        result = scan(dirs).to_dict()
        result["directories"] = [str(d) for d in dirs]
        return json_response(result)

    async def systemd_unit(request: Request) -> Response:
        body = await read_json(request)
        options = body.pop("systemd", {}) or {}
        spec, _ = fleet.plan({**body, "kind": "systemd"})
        binary = options.get("binary") or os.environ.get("CORRAL_LLAMA_SERVER") or "/usr/local/bin/llama-server"
        unit = render_unit(spec, binary, user=bool(options.get("user")), log_dir=options.get("log_dir"))
        return PlainTextResponse(unit)

    async def systemd_action(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        manager = SystemdManager(user=request.query_params.get("user") in ("1", "true"))
        if action == "status":
            status = await _in_thread(manager.status, name)
            return json_response({**dataclasses.asdict(status), "running": status.running})
        if action not in ("start", "stop", "restart"):
            raise GatewayError(404, f"unknown action '{action}': use start, stop, restart or status")
        await _in_thread(getattr(manager, action), name)
        return json_response({"name": name, "action": action})

    routes = [
        ("/fleet", inventory, "GET"),
        ("/fleet/plan", plan, "POST"),
        ("/fleet/deployments", deploy, "POST"),
        ("/fleet/deployments/{name}", remove, "DELETE"),
        ("/fleet/deployments/{name}/logs", logs, "GET"),
        ("/fleet/deployments/{name}/{action}", control, "POST"),
        ("/fleet/compose", get_compose, "GET"),
        ("/fleet/compose", post_compose, "POST"),
        ("/fleet/systemd/unit", systemd_unit, "POST"),
        ("/fleet/systemd/{name}/{action}", systemd_action, "POST"),
        ("/catalog", catalog, "GET"),
    ]
    return [Route(path, fleet_errors(endpoint), methods=[method]) for path, endpoint, method in routes]


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)
