"""The public, OpenAI-compatible API on TCP. Every route needs a Corral key except /health."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway_core.api.responses import EXCEPTION_HANDLERS, json_response
from gateway_core.gateway import pipeline
from gateway_core.state import GatewayState


def _timing(started: float) -> dict[str, str]:
    return {"server-timing": f"gateway;dur={(time.perf_counter() - started) * 1000:.2f}, upstream;dur=0"}


# The proxied routes, served without Starlette's routing and middleware: per request, those cost more than
# the rest of the gateway's own work (bench/README.md).
PROXIED = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}


class PublicApp:
    """POSTs to the proxied routes go straight to the pipeline; everything else to the Starlette app."""

    def __init__(self, state: GatewayState, routes: ASGIApp) -> None:
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = PROXIED.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.routes(scope, receive, send)
            return
        response = await pipeline.handle(self.state, route, Request(scope, receive))
        await response(scope, receive, send)


def build_public_app(state: GatewayState) -> PublicApp:
    async def proxied(request: Request) -> Response:  # PublicApp serves the POSTs: these routes answer 405 to the rest
        return await pipeline.handle(state, PROXIED[request.url.path], request)

    async def models(request: Request) -> Response:
        started = time.perf_counter()
        key = state.keys.authenticate(request.headers.get("authorization"))
        served = state.models()
        data = [
            {"id": model, "object": "model", "created": int(state.started_at), "owned_by": ",".join(providers)}
            for model, providers in sorted(served.items())
            if key.allows(model)
        ]
        return json_response({"object": "list", "data": data}, headers=_timing(started))

    async def health(request: Request) -> Response:
        started = time.perf_counter()
        ready = sum(1 for p in state.providers.values() if p.state == "ready")
        return json_response(
            {"status": "ok", "providers_ready": ready, "providers": len(state.providers)}, headers=_timing(started)
        )

    async def metrics(request: Request) -> Response:
        started = time.perf_counter()
        state.keys.authenticate(request.headers.get("authorization"))
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type, headers=_timing(started))

    return PublicApp(
        state,
        Starlette(
            routes=[
                *(Route(path, proxied, methods=["POST"]) for path in PROXIED),
                Route("/v1/models", models, methods=["GET"]),
                Route("/health", health, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"]),
            ],
            exception_handlers=EXCEPTION_HANDLERS,
        ),
    )
