"""The admin API, served only on the Unix socket: whoever can open the socket is admin.

Each handler reads the request, calls one domain object (the provider registry, the key store, the live
requests...) and answers with what it returned; the rules live in those objects, where they are unit-tested.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway_core import __version__
from gateway_core.api.admin_models import read_json
from gateway_core.api.callbacks_admin import CallbacksApi
from gateway_core.api.events import events_endpoint
from gateway_core.api.fleet import FleetApi
from gateway_core.api.guard import RequestGuard
from gateway_core.api.history import HistoryApi
from gateway_core.api.jobs_admin import JobsAdminApi
from gateway_core.api.on_demand import OnDemandApi
from gateway_core.api.responses import json_app, json_response
from gateway_core.api.telemetry import TelemetryApi
from gateway_core.archive.interface import Archive
from gateway_core.clock import Clock
from gateway_core.contracts.admin_requests import KeySpec, KeyUpdate
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.views import Cancelled, CreatedKey, HealthAnswer, Removed, Snapshot, StatusView
from gateway_core.events import EventBus
from gateway_core.fleet.gpu_sampler import GpuSampler
from gateway_core.fleet.manager import FleetManager
from gateway_core.fleet.on_demand import OnDemand
from gateway_core.fleet.processes import GpuProcesses, ProcessInspector
from gateway_core.gateway.accounting import LiveRequests, Stats
from gateway_core.gateway.key_store import KeyStore
from gateway_core.gateway.pipeline import Pipeline
from gateway_core.jobs.service import JobService
from gateway_core.providers import router
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.state import GatewayState


class AdminApi:
    """The admin routes' handlers, over the objects they read and change."""

    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        keys: KeyStore,
        live: LiveRequests,
        stats: Stats,
        gpus: GpuSampler,
        fleet: FleetManager,
        events: EventBus,
        pipeline: Pipeline,
        archive: Archive,
        jobs: JobService,
        on_demand: OnDemand,
        clock: Clock,
        started_at: float,
        data_dir: Path,
        socket_path: Path | None = None,
        listen: str | None = None,
    ) -> None:
        self._registry = registry
        self._keys = keys
        self._live = live
        self._stats = stats
        self._gpus = gpus
        self._fleet = fleet
        self._events = events
        self._pipeline = pipeline
        self._archive = archive
        self._jobs = jobs
        self._on_demand = on_demand
        self._clock = clock
        self._started_at = started_at
        self._data_dir, self._socket_path, self._listen = data_dir, socket_path, listen

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/status", self.status, methods=["GET"]),
            Route("/providers", self.list_providers, methods=["GET"]),
            Route("/providers", self.create_provider, methods=["POST"]),
            Route("/providers/test", self.test_unsaved_provider, methods=["POST"]),
            Route("/providers/{name}", self.get_provider, methods=["GET"]),
            Route("/providers/{name}", self.update_provider, methods=["PATCH"]),
            Route("/providers/{name}", self.delete_provider, methods=["DELETE"]),
            Route("/providers/{name}/test", self.test_saved_provider, methods=["POST"]),
            Route("/providers/{name}/drain", self.drain_provider, methods=["POST"]),
            Route("/providers/{name}/undrain", self.undrain_provider, methods=["POST"]),
            Route("/providers/{name}/models/load", self.load_provider_model, methods=["POST"]),
            Route("/providers/{name}/models/unload", self.unload_provider_model, methods=["POST"]),
            Route("/keys", self.list_keys, methods=["GET"]),
            Route("/keys", self.create_key, methods=["POST"]),
            Route("/keys/{id}", self.update_key, methods=["PATCH"]),
            Route("/keys/{id}", self.delete_key, methods=["DELETE"]),
            Route("/keys/{id}/revoke", self.revoke_key, methods=["POST"]),
            Route("/keys/{id}/webhook-secret", self.rotate_webhook_secret, methods=["POST"]),
            Route("/models", self.models, methods=["GET"]),
            Route("/requests", self.live_requests, methods=["GET"]),
            Route("/requests/{id}", self.cancel_request, methods=["DELETE"]),
            Route("/stats", self.stats, methods=["GET"]),
            Route("/gpus", self.gpus, methods=["GET"]),
            Route("/events", self.events, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
        ]

    # -- the daemon -----------------------------------------------------------------------------------

    def status_view(self) -> StatusView:
        return {
            "version": __version__,
            "started_at": self._started_at,
            "uptime_s": round(self._clock.time() - self._started_at, 1),
            "providers": self._registry.summaries(),
            "keys": len(self._keys),
            "models": self._registry.models(),
            "requests_in_flight": len(self._live),
            "archive": self._archive.status(),
            "pid": os.getpid(),
            "data_dir": str(self._data_dir),
            "socket": str(self._socket_path) if self._socket_path else None,
            "listen": self._listen,
        }

    def snapshot(self) -> Snapshot:
        """The event stream's first event: everything the console shows, at one moment."""
        status = self.status_view()
        return {
            "version": status["version"],
            "started_at": status["started_at"],
            "uptime_s": status["uptime_s"],
            "providers": status["providers"],
            "keys": self._keys.views(),
            "models": status["models"],
            "requests_in_flight": status["requests_in_flight"],
            "archive": status["archive"],
            "requests": self._live.views(),
            "gpus": self._gpus.latest.to_dict(),
            "fleet": self._fleet.latest,
            "jobs": self._jobs.counts(),
            "on_demand": self._on_demand.views(),
        }

    async def health(self, request: Request) -> Response:
        answer: HealthAnswer = {"status": "ok", "version": __version__, "pid": os.getpid()}
        return json_response(answer)

    async def status(self, request: Request) -> Response:
        return json_response(self.status_view())

    async def events(self, request: Request) -> Response:
        return await events_endpoint(self._events, request, snapshot=self.snapshot)

    async def gpus(self, request: Request) -> Response:
        return json_response(self._gpus.latest.to_dict())

    async def stats(self, request: Request) -> Response:
        return json_response(self._stats.view())

    # -- providers ------------------------------------------------------------------------------------

    async def list_providers(self, request: Request) -> Response:
        return json_response(self._registry.summaries())

    async def create_provider(self, request: Request) -> Response:
        config = ProviderConfig.model_validate(await read_json(request))
        runtime = await self._registry.add(config)
        return json_response(runtime.summary(), status=201)

    async def get_provider(self, request: Request) -> Response:
        return json_response(self._registry.require(request.path_params["name"]).summary())

    async def update_provider(self, request: Request) -> Response:
        runtime = self._registry.require(request.path_params["name"])
        updated = await self._registry.update(runtime, await read_json(request))
        return json_response(updated.summary())

    async def delete_provider(self, request: Request) -> Response:
        name = self._registry.require(request.path_params["name"]).name
        await self._registry.remove(name)
        removed: Removed = {"removed": name}
        return json_response(removed)

    async def test_saved_provider(self, request: Request) -> Response:
        return json_response(await self._registry.test(request.path_params["name"]))

    async def drain_provider(self, request: Request) -> Response:
        return json_response(self._registry.drain(request.path_params["name"]).summary())

    async def undrain_provider(self, request: Request) -> Response:
        return json_response(self._registry.undrain(request.path_params["name"]).summary())

    async def load_provider_model(self, request: Request) -> Response:
        """A router-mode llama-server's model, loaded: the provider once it is (router.load_model)."""
        runtime = self._registry.require(request.path_params["name"])
        router.require_router(runtime)
        model, timeout_s = router.model_request(await read_json(request))
        await router.load_model(runtime, model, timeout_s)
        return json_response(runtime.summary())

    async def unload_provider_model(self, request: Request) -> Response:
        """Unloaded once nothing runs on it (router.unload_model): the provider after."""
        runtime = self._registry.require(request.path_params["name"])
        router.require_router(runtime)
        model, timeout_s = router.model_request(await read_json(request))
        await router.unload_model(runtime, model, timeout_s)
        return json_response(runtime.summary())

    async def test_unsaved_provider(self, request: Request) -> Response:
        config = ProviderConfig.model_validate(await read_json(request))
        return json_response(await self._registry.test_unsaved(config))

    async def models(self, request: Request) -> Response:
        return json_response(self._registry.models())

    # -- keys -----------------------------------------------------------------------------------------

    async def list_keys(self, request: Request) -> Response:
        return json_response(self._keys.views())

    async def create_key(self, request: Request) -> Response:
        key, plaintext = self._keys.create(KeySpec.model_validate(await read_json(request)))
        if key.webhook_secret is None:  # new_key always makes one: a key without one could sign nothing
            raise RuntimeError(f"key {key.id} was created without a webhook secret")
        created: CreatedKey = {**self._keys.view(key), "key": plaintext, "webhook_secret": key.webhook_secret}
        return json_response(created, status=201)

    async def rotate_webhook_secret(self, request: Request) -> Response:
        return json_response(self._keys.rotate_webhook_secret(self._keys.require(request.path_params["id"])))

    async def update_key(self, request: Request) -> Response:
        key = self._keys.require(request.path_params["id"])
        updated = self._keys.update(key, KeyUpdate.model_validate(await read_json(request)))
        return json_response(self._keys.view(updated))

    async def revoke_key(self, request: Request) -> Response:
        revoked = self._keys.revoke(self._keys.require(request.path_params["id"]))
        return json_response(self._keys.view(revoked))

    async def delete_key(self, request: Request) -> Response:
        key = self._keys.require(request.path_params["id"])
        self._keys.delete(key)
        removed: Removed = {"removed": key.id}
        return json_response(removed)

    # -- requests -------------------------------------------------------------------------------------

    async def live_requests(self, request: Request) -> Response:
        return json_response(self._live.views())

    async def cancel_request(self, request: Request) -> Response:
        live = self._live.get(request.path_params["id"])
        if live is None:
            raise GatewayError(404, f"no request '{request.path_params['id']}' is running", code="request_not_found")
        live.cancel()
        cancelled: Cancelled = {"cancelled": live.id}
        return json_response(cancelled)

    async def chat(self, request: Request) -> Response:
        return await self._pipeline.handle("chat", request, admin=True)

    async def completions(self, request: Request) -> Response:
        return await self._pipeline.handle("completions", request, admin=True)


def build_admin_app(state: GatewayState, *, socket_path: Path | None = None, listen: str | None = None) -> RequestGuard:
    """`socket_path` and `listen` are what the server bound, for GET /status (`corral daemon status`)."""
    admin = AdminApi(
        registry=state.registry,
        keys=state.keys,
        live=state.live,
        stats=state.stats,
        gpus=state.gpus,
        fleet=state.fleet,
        events=state.events,
        pipeline=state.pipeline,
        archive=state.archive,
        jobs=state.jobs,
        on_demand=state.on_demand,
        clock=state.clock,
        started_at=state.started_at,
        data_dir=state.data_dir,
        socket_path=socket_path,
        listen=listen,
    )
    fleet = FleetApi(fleet=state.fleet, registry=state.registry, on_demand=state.on_demand, data_dir=state.data_dir)
    history = HistoryApi(archive=state.archive, clock=state.clock)
    jobs = JobsAdminApi(jobs=state.jobs, keys=state.keys)
    callbacks = CallbacksApi(state.callbacks)
    on_demand = OnDemandApi(state.on_demand)  # before the fleet's routes: its {action} would take load and unload
    telemetry = TelemetryApi(
        gpu_history=state.gpu_history,
        provider_rates=state.provider_rates,
        processes=GpuProcesses(state.gpus, lambda: state.fleet.latest["deployments"], ProcessInspector()),
        clock=state.clock,
    )
    app = json_app(
        [
            *telemetry.routes(),  # first: /providers/{name} would take /providers/history
            *admin.routes(),
            *on_demand.routes(),
            *fleet.routes(),
            *history.routes(),
            *jobs.routes(),
            *callbacks.routes(),
        ]
    )
    return RequestGuard(app, listener="admin", failures=state.failures)
