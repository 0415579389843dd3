"""The admin API, served only on the Unix socket: whoever can open the socket is admin."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway_core import __version__
from gateway_core.api.admin_models import KeySpec, KeyUpdate, read_json, validation_error
from gateway_core.api.events import events_endpoint
from gateway_core.api.fleet import fleet_routes
from gateway_core.api.responses import EXCEPTION_HANDLERS, json_response
from gateway_core.contracts.errors import GatewayError
from gateway_core.gateway import pipeline
from gateway_core.gateway.keys import ApiKey, new_key
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.health import probe
from gateway_core.providers.upstream import make_session
from gateway_core.state import GatewayState


def status_view(state: GatewayState) -> dict[str, Any]:
    return {
        "version": __version__,
        "started_at": state.started_at,
        "uptime_s": round(time.time() - state.started_at, 1),
        "providers": [p.summary() for p in state.providers.values()],
        "keys": len(state.keys),
        "models": state.models(),
        "requests_in_flight": len(state.live),
    }


def build_admin_app(state: GatewayState) -> Starlette:
    def provider_or_404(name: str):
        runtime = state.providers.get(name)
        if runtime is None:
            raise GatewayError(
                404,
                f"no provider named '{name}'; `corral providers list` shows them",
                param="name",
                code="provider_not_found",
            )
        return runtime

    def key_or_404(id_or_name: str) -> ApiKey:
        key = state.keys.find(id_or_name)
        if key is None:
            raise GatewayError(404, f"no key with id or name '{id_or_name}'", code="key_not_found")
        return key

    def validated_provider(data: dict[str, Any]) -> ProviderConfig:
        try:
            return ProviderConfig.model_validate(data)
        except ValidationError as error:
            raise validation_error(error) from error

    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__})

    async def status(request: Request) -> Response:
        return json_response(status_view(state))

    async def list_providers(request: Request) -> Response:
        return json_response([p.summary() for p in state.providers.values()])

    async def create_provider(request: Request) -> Response:
        config = validated_provider(await read_json(request))
        if config.name in state.providers:
            raise GatewayError(
                409, f"a provider named '{config.name}' already exists", param="name", code="duplicate_name"
            )
        runtime = await state.put_provider(config)
        return json_response(runtime.summary(), status=201)

    async def get_provider(request: Request) -> Response:
        return json_response(provider_or_404(request.path_params["name"]).summary())

    async def update_provider(request: Request) -> Response:
        runtime = provider_or_404(request.path_params["name"])
        changes = await read_json(request)
        if "name" in changes and changes["name"] != runtime.name:
            raise GatewayError(400, "name: a provider cannot be renamed; remove it and add it again", param="name")
        merged = {**runtime.config.stored(), **changes}
        updated = await state.put_provider(validated_provider(merged))
        return json_response(updated.summary())

    async def delete_provider(request: Request) -> Response:
        provider_or_404(request.path_params["name"])
        await state.remove_provider(request.path_params["name"])
        return json_response({"removed": request.path_params["name"]})

    async def test_saved_provider(request: Request) -> Response:
        runtime = provider_or_404(request.path_params["name"])
        await state.probe_once(runtime)
        return json_response(
            {
                "name": runtime.name,
                "health": runtime.health,
                "detail": runtime.health_detail,
                "models": runtime.models,
                "capacity": runtime.capacity,
            }
        )

    async def test_unsaved_provider(request: Request) -> Response:
        config = validated_provider(await read_json(request))
        session = make_session(config)
        try:
            result = await probe(config, session)
        finally:
            await session.close()
        return json_response(
            {
                "name": config.name,
                "health": result.health,
                "detail": result.detail,
                "models": result.models,
                "capacity": result.capacity,
            }
        )

    async def list_keys(request: Request) -> Response:
        return json_response([state.key_view(key) for key in state.keys])

    async def create_key(request: Request) -> Response:
        try:
            spec = KeySpec.model_validate(await read_json(request))
        except ValidationError as error:
            raise validation_error(error) from error
        if state.keys.find(spec.name) is not None:
            raise GatewayError(409, f"a key named '{spec.name}' already exists", param="name", code="duplicate_name")
        key, plaintext = new_key(spec.name, **spec.settings())
        state.save_key(key)
        return json_response({**state.key_view(key), "key": plaintext}, status=201)

    async def update_key(request: Request) -> Response:
        key = key_or_404(request.path_params["id"])
        try:
            update = KeyUpdate.model_validate(await read_json(request))
        except ValidationError as error:
            raise validation_error(error) from error
        changes = update.model_dump(exclude_unset=True)
        if changes.get("name") not in (None, key.name) and state.keys.find(changes["name"]) is not None:
            raise GatewayError(
                409, f"a key named '{changes['name']}' already exists", param="name", code="duplicate_name"
            )
        if "models" in changes and changes["models"] is not None:
            changes["models"] = tuple(changes["models"])
        if "expires_in_days" in changes:
            days = changes.pop("expires_in_days")
            changes["expires_at"] = time.time() + days * 86400 if days else None
        updated = replace(key, **changes)
        state.save_key(updated)
        return json_response(state.key_view(updated))

    async def revoke_key(request: Request) -> Response:
        key = key_or_404(request.path_params["id"])
        revoked = replace(key, revoked=True)
        state.save_key(revoked)
        return json_response(state.key_view(revoked))

    async def delete_key(request: Request) -> Response:
        key = key_or_404(request.path_params["id"])
        state.delete_key(key)
        return json_response({"removed": key.id})

    async def models(request: Request) -> Response:
        return json_response(state.models())

    async def live_requests(request: Request) -> Response:
        return json_response([live.view() for live in state.live])

    async def cancel_request(request: Request) -> Response:
        live = state.live.get(request.path_params["id"])
        if live is None:
            raise GatewayError(404, f"no request '{request.path_params['id']}' is running", code="request_not_found")
        live.cancel()
        return json_response({"cancelled": live.id})

    async def gpus(request: Request) -> Response:
        return json_response(state.gpus.latest.to_dict())

    async def stats(request: Request) -> Response:
        return json_response(state.stats.view())

    async def chat(request: Request) -> Response:
        return await pipeline.handle(state, "chat", request, admin=True)

    async def completions(request: Request) -> Response:
        return await pipeline.handle(state, "completions", request, admin=True)

    async def events(request: Request) -> Response:
        return await events_endpoint(state, request, snapshot=lambda: snapshot(state))

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/status", status, methods=["GET"]),
            Route("/providers", list_providers, methods=["GET"]),
            Route("/providers", create_provider, methods=["POST"]),
            Route("/providers/test", test_unsaved_provider, methods=["POST"]),
            Route("/providers/{name}", get_provider, methods=["GET"]),
            Route("/providers/{name}", update_provider, methods=["PATCH"]),
            Route("/providers/{name}", delete_provider, methods=["DELETE"]),
            Route("/providers/{name}/test", test_saved_provider, methods=["POST"]),
            Route("/keys", list_keys, methods=["GET"]),
            Route("/keys", create_key, methods=["POST"]),
            Route("/keys/{id}", update_key, methods=["PATCH"]),
            Route("/keys/{id}", delete_key, methods=["DELETE"]),
            Route("/keys/{id}/revoke", revoke_key, methods=["POST"]),
            Route("/models", models, methods=["GET"]),
            Route("/requests", live_requests, methods=["GET"]),
            Route("/requests/{id}", cancel_request, methods=["DELETE"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/gpus", gpus, methods=["GET"]),
            Route("/events", events, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            *fleet_routes(state),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )


def snapshot(state: GatewayState) -> dict[str, Any]:
    return {
        **status_view(state),
        "keys": [state.key_view(key) for key in state.keys],
        "requests": [live.view() for live in state.live],
        "gpus": state.gpus.latest.to_dict(),
        "fleet": state.fleet.latest,
    }
