"""The public, OpenAI-compatible API on TCP. Every route needs a Corral key except /health."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway_core.api.responses import EXCEPTION_HANDLERS, json_response
from gateway_core.gateway import pipeline
from gateway_core.state import GatewayState


def _timing(started: float) -> dict[str, str]:
    return {"server-timing": f"gateway;dur={(time.perf_counter() - started) * 1000:.2f}, upstream;dur=0"}


def build_public_app(state: GatewayState) -> Starlette:
    async def chat(request: Request) -> Response:
        return await pipeline.handle(state, "chat", request)

    async def completions(request: Request) -> Response:
        return await pipeline.handle(state, "completions", request)

    async def embeddings(request: Request) -> Response:
        return await pipeline.handle(state, "embeddings", request)

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
        return json_response({"status": "ok", "providers_ready": ready, "providers": len(state.providers)},
                             headers=_timing(started))

    async def metrics(request: Request) -> Response:
        started = time.perf_counter()
        state.keys.authenticate(request.headers.get("authorization"))
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type, headers=_timing(started))

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
