"""Admin routes for models on demand: each deployment's load state, loading and unloading it, and its policy."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway_core.api.admin_models import read_json, validation_error
from gateway_core.api.fleet import fleet_errors
from gateway_core.api.responses import json_response
from gateway_core.fleet.load_policy import policy_fields
from gateway_core.fleet.on_demand import OnDemand


class OnDemandApi:
    def __init__(self, on_demand: OnDemand) -> None:
        self._on_demand = on_demand

    def routes(self) -> list[BaseRoute]:
        """Before the fleet's `/fleet/deployments/{name}/{action}`, which would take load and unload."""
        return [
            Route("/fleet/on-demand", self.list, methods=["GET"]),
            Route("/fleet/on-demand/{name}", self.one, methods=["GET"]),
            Route("/fleet/deployments/{name}/load", fleet_errors(self.load), methods=["POST"]),
            Route("/fleet/deployments/{name}/unload", fleet_errors(self.unload), methods=["POST"]),
            Route("/fleet/deployments/{name}/policy", self.policy, methods=["PATCH"]),
        ]

    async def list(self, request: Request) -> Response:
        return json_response(self._on_demand.views())

    async def one(self, request: Request) -> Response:
        return json_response(self._on_demand.view(request.path_params["name"]))

    async def load(self, request: Request) -> Response:
        return json_response(await self._on_demand.load(request.path_params["name"]))

    async def unload(self, request: Request) -> Response:
        return json_response(await self._on_demand.unload(request.path_params["name"]))

    async def policy(self, request: Request) -> Response:
        changes = policy_fields(await read_json(request))
        try:
            return json_response(self._on_demand.set_policy(request.path_params["name"], changes))
        except ValidationError as error:
            raise validation_error(error) from error
