"""The callback deliveries' admin routes: list them (pending, delivered, dead-lettered) and redeliver one.

GET /callbacks?state=&limit=&cursor= -> DeliveryPage, newest first; POST /callbacks/{id}/redeliver -> DeliveryView.
The rules are CallbackService's (gateway_core/callbacks/service.py); these handlers read the query and call it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway_core.api.responses import json_response
from gateway_core.callbacks.service import CallbackService
from gateway_core.contracts.errors import GatewayError

DEFAULT_LIMIT = 50
QUERY = ("state", "limit", "cursor")


class CallbacksApi:
    def __init__(self, callbacks: CallbackService) -> None:
        self._callbacks = callbacks

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/callbacks", self.list, methods=["GET"]),
            Route("/callbacks/{id}/redeliver", self.redeliver, methods=["POST"]),
        ]

    async def list(self, request: Request) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - set(QUERY))
        if unknown:
            raise GatewayError(
                400,
                f"unknown query parameter '{unknown[0]}': GET /callbacks takes {', '.join(QUERY)}",
                param=unknown[0],
                code="invalid_parameter",
            )
        limit_text = params.get("limit") or str(DEFAULT_LIMIT)
        if not limit_text.isdigit():
            raise GatewayError(400, f"limit: '{limit_text}' is not a whole number", param="limit")
        page = await self._callbacks.list(
            state=params.get("state") or None, limit=int(limit_text), cursor=params.get("cursor") or None
        )
        return json_response(page)

    async def redeliver(self, request: Request) -> Response:
        return json_response(await self._callbacks.redeliver(request.path_params["id"]))
