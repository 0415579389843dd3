"""The public, OpenAI-compatible API on TCP. Every route needs a Corral key except /health and the OpenAPI document."""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway_core.api.guard import RequestGuard
from gateway_core.api.openapi import OpenApiDocument
from gateway_core.api.queue import QueueApi
from gateway_core.api.responses import json_app, json_response
from gateway_core.contracts.request_id import HEADER as REQUEST_ID
from gateway_core.contracts.request_id import new_request_id
from gateway_core.gateway.failures import Failures, internal_error
from gateway_core.gateway.keys import KeyRing
from gateway_core.gateway.pipeline import Pipeline
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.state import GatewayState


def _timing(started: float) -> dict[str, str]:
    return {"server-timing": f"gateway;dur={(time.perf_counter() - started) * 1000:.2f}, upstream;dur=0"}


# The proxied routes, served without Starlette's routing and middleware: per request, those cost more than
# the rest of the gateway's own work (bench/README.md).
PROXIED = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}


class PublicApp:
    """POSTs to the proxied routes go straight to the pipeline; everything else to the guarded Starlette app.

    The proxied routes get what the guard (api/guard.py) gives the rest, without its wrapper around every send:
    the pipeline puts the request id on each answer it makes, a failure before the answer is a JSON 500 here,
    and one after a stream started is the relay's SSE error event.
    """

    def __init__(self, pipeline: Pipeline, routes: ASGIApp, failures: Failures) -> None:
        self.pipeline = pipeline
        self.routes = routes
        self._failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = PROXIED.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.routes(scope, receive, send)
            return
        request_id = new_request_id()
        try:
            response = await self.pipeline.handle(route, Request(scope, receive), request_id=request_id)
        except ClientDisconnect:
            return  # the client left before its body arrived: nobody to answer, and nothing failed here
        except Exception:
            self._failures.report(request_id, f"POST {scope['path']}", "public")
            response = internal_error(request_id).to_response({REQUEST_ID: request_id})
        await response(scope, receive, send)


class PublicApi:
    """The public routes that are not proxied: the model list, health and metrics."""

    def __init__(
        self,
        *,
        keys: KeyRing,
        registry: ProviderRegistry,
        metrics: GatewayMetrics,
        pipeline: Pipeline,
        started_at: float,
    ) -> None:
        self._keys = keys
        self._registry = registry
        self._metrics = metrics
        self._pipeline = pipeline
        self._started_at = started_at

    def routes(self) -> list[Route]:
        return [
            *(Route(path, self.proxied, methods=["POST"]) for path in PROXIED),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    async def proxied(self, request: Request) -> Response:  # PublicApp serves the POSTs: these answer 405 to the rest
        return await self._pipeline.handle(PROXIED[request.url.path], request)

    async def models(self, request: Request) -> Response:
        started = time.perf_counter()
        key = self._keys.authenticate(request.headers.get("authorization"))
        served = self._registry.models()
        data = [
            {"id": model, "object": "model", "created": int(self._started_at), "owned_by": ",".join(providers)}
            for model, providers in sorted(served.items())
            if key.allows(model)
        ]
        return json_response({"object": "list", "data": data}, headers=_timing(started))

    async def health(self, request: Request) -> Response:
        started = time.perf_counter()
        body = {"status": "ok", "providers_ready": self._registry.ready_count(), "providers": len(self._registry)}
        return json_response(body, headers=_timing(started))

    async def metrics(self, request: Request) -> Response:
        started = time.perf_counter()
        self._keys.authenticate(request.headers.get("authorization"))
        body, content_type = self._metrics.render()
        return Response(body, media_type=content_type, headers=_timing(started))


def build_public_app(state: GatewayState) -> PublicApp:
    api = PublicApi(
        keys=state.keys.ring,
        registry=state.registry,
        metrics=state.metrics,
        pipeline=state.pipeline,
        started_at=state.started_at,
    )
    queue = QueueApi(keys=state.keys.ring, jobs=state.jobs, body_cap=state.body_cap)
    routes = RequestGuard(
        json_app([*api.routes(), *queue.routes(), OpenApiDocument().route()]),
        listener="public",
        failures=state.failures,
    )
    return PublicApp(state.pipeline, routes, state.failures)
