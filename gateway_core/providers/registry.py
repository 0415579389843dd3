"""The providers the gateway routes to: kept in config.json, probed on a loop, and asked for by model.

Deployments from the fleet become providers here too, under their own name, and each request attempt holds
one of a provider's slots through a `Slot`, which frees it (and wakes a request waiting for one) exactly once.

A provider can be drained for maintenance (`drain`): it takes no new requests or jobs, what it holds runs to its
end, and its state goes from "draining" to "drained" when its last slot is released; `undrain` routes to it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from gateway_core.clock import SYSTEM_CLOCK, Clock
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.views import ProbeAnswer, ProviderView
from gateway_core.events import EventBus
from gateway_core.metrics import PROVIDER_STATES, GatewayMetrics, SlotUse
from gateway_core.store.config_store import ConfigStore

from .circuit import CircuitBreaker
from .config import ProviderConfig
from .health import ProbeResult, probe
from .runtime import ProviderRuntime
from .upstream import make_session

log = logging.getLogger("corral.core")

PROBE_INTERVAL_S = 5.0
LOADING_PROBE_INTERVAL_S = 1.0  # a provider that is not ready yet is probed this often, to route it soon

# Asks a provider whether it is ready, what it serves and how many slots it has; never raises (health.probe).
Prober = Callable[[ProviderConfig, aiohttp.ClientSession], Awaitable[ProbeResult]]


class Deployment(Protocol):
    """What the registry needs of a fleet deployment to route it (fleet/deployment.py's DeploymentSpec)."""

    @property
    def name(self) -> str: ...

    @property
    def base_url(self) -> str: ...


class Slot:
    """One attempt's hold on one of a provider's slots: counted in its load and the in-flight metric until
    released, and released once however often `release` is called (a failed attempt and its caller's
    clean-up may both reach it)."""

    __slots__ = ("_registry", "_released", "provider")

    def __init__(self, registry: ProviderRegistry, provider: ProviderRuntime) -> None:
        self._registry = registry
        self._released = False
        self.provider = provider
        provider.take_slot()
        registry.metrics.in_flight(provider.name, 1)

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        provider = self.provider
        provider.free_slot()
        registry = self._registry
        registry.metrics.in_flight(provider.name, -1)
        if provider.in_flight == 0 and provider.config.draining:
            registry.drained(provider)
        registry.signal_slot_released()


class ProviderRegistry:
    def __init__(
        self,
        store: ConfigStore,
        metrics: GatewayMetrics,
        events: EventBus,
        *,
        probe_interval_s: float = PROBE_INTERVAL_S,
        prober: Prober = probe,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._probe = prober
        self._clock = clock
        self.metrics = metrics
        metrics.watch_slots(self._slot_use)
        self._events = events
        self.probe_interval_s = probe_interval_s
        self.providers: dict[str, ProviderRuntime] = {}
        for record in store.all("providers"):
            config = ProviderConfig.model_validate(record)
            self.providers[config.name] = self._runtime(config)
        self._probers: dict[str, asyncio.Task[None]] = {}
        # Replaced on every release, so waiters wake once per freed slot without a lock.
        self.slot_released = asyncio.Event()
        # Called at every release, in the releasing call: the job scheduler fills the slot without a task's hop.
        self.release_listeners: list[Callable[[], None]] = []

    def _runtime(self, config: ProviderConfig) -> ProviderRuntime:
        # Its circuit's cooldown runs on the injected clock, so a test can move past it instead of waiting.
        return ProviderRuntime(
            config,
            breaker=CircuitBreaker(clock=self._clock.monotonic),
            monotonic=self._clock.monotonic,
            router_listener=self._router_changed,
        )

    def _router_changed(self, runtime: ProviderRuntime) -> None:
        """A router's model statuses changed outside a probe (router.py's loads and unloads): publish them."""
        if self.providers.get(runtime.name) is runtime:
            self._publish_state(runtime)

    def __iter__(self) -> Iterator[ProviderRuntime]:
        return iter(self.providers.values())

    def __len__(self) -> int:
        return len(self.providers)

    def __contains__(self, name: object) -> bool:
        return name in self.providers

    # -- routing --------------------------------------------------------------------------------------

    def serving(self, model: str) -> list[ProviderRuntime]:
        """The enabled providers that list the model: a request's candidates, before health and load."""
        return [p for p in self.providers.values() if p.config.enabled and model in p.models]

    def models(self) -> dict[str, list[str]]:
        """Public model name -> the providers that serve it (enabled ones only)."""
        served: dict[str, list[str]] = {}
        for provider in self.providers.values():
            if provider.config.enabled:
                for model in provider.models:
                    served.setdefault(model, []).append(provider.name)
        return served

    def unknown_model(self, model: str) -> GatewayError:
        """Why no provider serves the model: not discovered yet (503, retry) or not served at all (404)."""
        # A provider still loading has not listed its models yet: that is "try again soon", not "no such model".
        undiscovered = [
            p.name for p in self.providers.values() if p.config.enabled and not p.models and p.health != "ready"
        ]
        if undiscovered:
            return GatewayError(
                503,
                f"model '{model}' is not listed by any ready provider; {', '.join(undiscovered)} "
                "have not listed their models yet (loading or down); retry shortly",
                code="no_provider_ready",
                headers={"retry-after": "2"},
            )
        return GatewayError(
            404,
            f"model '{model}' is not served here; `GET /v1/models` lists the models",
            param="model",
            code="model_not_found",
        )

    def no_route(self, model: str, candidates: list[ProviderRuntime]) -> GatewayError:
        """Why none of a model's candidates can take a request now: all drained for maintenance, or none ready."""
        if candidates and all(p.draining for p in candidates):
            names = ", ".join(p.name for p in candidates)
            return GatewayError(
                503,
                f"model '{model}' is served only by providers drained for maintenance ({names}); retry later, "
                f"or ask the operator to undrain one (`corral providers undrain {candidates[0].name}`)",
                code="provider_draining",
                headers={"retry-after": "10"},
            )
        states = ", ".join(f"{p.name} {p.state}" for p in candidates)
        return GatewayError(
            503,
            f"no provider for model '{model}' is ready ({states}); retry shortly",
            code="no_provider_ready",
            headers={"retry-after": "1"},
        )

    def _slot_use(self) -> list[SlotUse]:
        return [SlotUse(p.name, p.capacity, p.busy_slot_seconds()) for p in self.providers.values()]

    def occupy(self, provider: ProviderRuntime) -> Slot:
        """Hold one of the provider's slots for an attempt; release the Slot when the attempt is over."""
        return Slot(self, provider)

    def signal_slot_released(self) -> None:
        released, self.slot_released = self.slot_released, asyncio.Event()
        released.set()
        for listener in self.release_listeners:
            listener()

    # -- the admin's view and changes -----------------------------------------------------------------

    def get(self, name: str) -> ProviderRuntime | None:
        return self.providers.get(name)

    def require(self, name: str) -> ProviderRuntime:
        runtime = self.providers.get(name)
        if runtime is None:
            raise GatewayError(
                404,
                f"no provider named '{name}'; `corral providers list` shows them",
                param="name",
                code="provider_not_found",
            )
        return runtime

    def summaries(self) -> list[ProviderView]:
        return [p.summary() for p in self.providers.values()]

    def ready_count(self) -> int:
        return sum(1 for p in self.providers.values() if p.state == "ready")

    def refuse_taken_name(self, name: str, hint: str = "") -> None:
        """A 409 when a provider has the name already; `hint` says what to do instead."""
        if name in self.providers:
            raise GatewayError(
                409, f"a provider named '{name}' already exists{hint}", param="name", code="duplicate_name"
            )

    async def add(self, config: ProviderConfig) -> ProviderRuntime:
        """A new provider, saved, probed once and probed on from then on."""
        self.refuse_taken_name(config.name)
        return await self.put(config)

    async def update(self, runtime: ProviderRuntime, changes: dict[str, Any]) -> ProviderRuntime:
        """Apply the fields in `changes` over the saved configuration; the result is validated as a new one.

        Raises pydantic's ValidationError for a bad field, GatewayError (400) for an attempt to rename.
        """
        if "name" in changes and changes["name"] != runtime.name:
            raise GatewayError(400, "name: a provider cannot be renamed; remove it and add it again", param="name")
        if "draining" in changes and changes["draining"] != runtime.draining:
            # Replacing the runtime would forget the requests in flight, which a drain waits for.
            raise GatewayError(
                400,
                f"draining: drain or undrain with `corral providers drain|undrain {runtime.name}` "
                f"(POST /providers/{runtime.name}/drain or /undrain)",
                param="draining",
                code="invalid_field",
            )
        return await self.put(ProviderConfig.model_validate({**runtime.config.stored(), **changes}))

    async def put(self, config: ProviderConfig) -> ProviderRuntime:
        """Save the provider and route to it: a provider of the same name is replaced (and its pool closed)."""
        old = self.providers.get(config.name)
        runtime = self._runtime(config)
        self._store.put("providers", "name", config.stored())
        self.providers[config.name] = runtime
        if old is not None:
            await self._stop_probing(config.name)
            await old.close()
        await self.probe_once(runtime)
        self._start_probing(runtime)
        return runtime

    async def remove(self, name: str) -> bool:
        runtime = self.providers.pop(name, None)
        if runtime is None:
            return False
        self._store.remove("providers", "name", name)
        await self._stop_probing(name)
        await runtime.close()
        self.metrics.remove_provider(name)
        self._events.publish("provider.removed", {"name": name})
        log.info("provider %s removed", name)
        return True

    # -- maintenance ----------------------------------------------------------------------------------

    def drain(self, name: str) -> ProviderRuntime:
        """Send the provider nothing new, saved so a restart keeps it; what it holds now runs to its end.

        The runtime stays the same object, so the requests in flight keep counting on it until the last one
        releases its slot and the provider turns "drained". Draining a drained provider changes nothing.
        """
        runtime = self.require(name)
        if not runtime.draining:
            self._set_draining(runtime, True)
            log.info("provider %s draining (%d in flight)", name, runtime.in_flight)
            self._publish_state(runtime)
        return runtime

    def undrain(self, name: str) -> ProviderRuntime:
        """Route to the provider again; what waits for capacity (requests, jobs) is woken."""
        runtime = self.require(name)
        if runtime.draining:
            self._set_draining(runtime, False)
            log.info("provider %s undrained", name)
            self._publish_state(runtime)
            self.signal_slot_released()
        return runtime

    def drained(self, runtime: ProviderRuntime) -> None:
        """The last request a draining provider held has ended (Slot.release)."""
        if self.providers.get(runtime.name) is runtime:  # not one replaced since, whose view would be stale
            log.info("provider %s drained: nothing in flight", runtime.name)
            self._publish_state(runtime)

    def _set_draining(self, runtime: ProviderRuntime, draining: bool) -> None:
        config = runtime.config.model_copy(update={"draining": draining})
        self._store.put("providers", "name", config.stored())
        runtime.config = config

    def _publish_state(self, runtime: ProviderRuntime) -> None:
        self.metrics.provider_state(runtime.name, runtime.state if runtime.state in PROVIDER_STATES else "down")
        self._events.publish("provider", runtime.summary())

    async def test(self, name: str) -> ProbeAnswer:
        """Probe a saved provider now, as its loop would, and say what was found."""
        runtime = self.require(name)
        result = await self._probe(runtime.config, runtime.session)
        self._apply(runtime, result)
        answer: ProbeAnswer = {
            "name": runtime.name,
            "health": runtime.health,
            "detail": runtime.health_detail,
            "models": runtime.models,
            "capacity": runtime.capacity,
        }
        if result.raw:  # the library's own text, one key away in the console
            answer["raw_detail"] = result.raw
        return answer

    async def test_unsaved(self, config: ProviderConfig) -> ProbeAnswer:
        """Probe a configuration before it is saved, on a connection pool of its own."""
        session = make_session(config)
        try:
            result = await self._probe(config, session)
        finally:
            await session.close()
        answer: ProbeAnswer = {
            "name": config.name,
            "health": result.health,
            "detail": result.detail,
            "models": result.models,
            "capacity": result.capacity,
        }
        if result.raw:
            answer["raw_detail"] = result.raw
        return answer

    # -- deployments from the fleet -------------------------------------------------------------------

    async def register_deployment(self, deployment: Deployment) -> None:
        """A healthy deployment is routed at once, as a llama-server provider under its own name. A router-mode
        one (a DeploymentSpec with `router`) serves the models its probe discovers, each under its own name."""
        router = getattr(deployment, "router", None) is not None  # what is not a DeploymentSpec serves one model
        config = ProviderConfig(
            name=deployment.name,
            type="llama-server",
            base_url=deployment.base_url,
            models={} if router else {deployment.name: deployment.name},
        )
        await self.put(config)
        if router:
            self.seed_router_models(deployment.name, getattr(deployment, "model_path", ""))

    def seed_router_models(self, name: str, models_dir: str) -> None:
        """A router deployment that has not answered a probe (a cold on-demand one) lists the GGUFs of its
        directory, each unloaded, so its models are routed (and start it) before it first runs; its first
        probe replaces them with what llama-server lists."""
        runtime = self.providers.get(name)
        if runtime is None or runtime.discovered_models or not models_dir:
            return
        stems = sorted(path.stem for path in Path(models_dir).glob("*.gguf") if path.is_file())
        runtime.discovered_models = {stem: stem for stem in stems}
        runtime.set_router_models([{"id": stem, "status": "unloaded", "detail": ""} for stem in stems])

    async def unregister_deployment(self, name: str) -> None:
        await self.remove(name)

    async def reprobe(self, name: str) -> None:
        """Probe now rather than at the next turn of the loop (a deployment's container changed state)."""
        runtime = self.providers.get(name)
        if runtime is not None:
            await self.probe_once(runtime)

    def set_cold(self, name: str, detail: str) -> None:
        """A deployment stopped on purpose (models on demand): not routed to, with the reason, until it is
        started and answers its probe again; nothing counts against it."""
        runtime = self.providers.get(name)
        if runtime is not None:
            self._apply(runtime, ProbeResult("down", detail))

    # -- probing --------------------------------------------------------------------------------------

    async def probe_once(self, runtime: ProviderRuntime) -> None:
        self._apply(runtime, await self._probe(runtime.config, runtime.session))

    def _apply(self, runtime: ProviderRuntime, result: ProbeResult) -> None:
        runtime.mark_probed(self._clock.time())
        changed = (result.health, result.detail) != (runtime.health, runtime.health_detail)
        if result.health == "ready":
            # A router model's status change (unloaded -> loading -> loaded) is news even when the health is not.
            changed = changed or result.router_models != runtime.router_models
            runtime.router_models = result.router_models
            runtime.discovered_models = result.models
            runtime.discovered_capacity = result.capacity
            runtime.discovered_media = result.media
            if runtime.breaker.state != "closed" and runtime.health != "ready":
                runtime.breaker.record_success()
        previous = runtime.state
        runtime.health, runtime.health_detail = result.health, result.detail
        self.metrics.provider_state(runtime.name, runtime.state if runtime.state in PROVIDER_STATES else "down")
        if changed:
            if runtime.state != previous:
                log.info("provider %s: %s -> %s (%s)", runtime.name, previous, runtime.state, result.detail)
            self._events.publish("provider", runtime.summary())

    async def start(self) -> None:
        """Probe every provider once (so the first requests find the ready ones), then on a loop each."""
        await asyncio.gather(*(self.probe_once(p) for p in self.providers.values()))
        for runtime in self.providers.values():
            self._start_probing(runtime)

    async def close(self) -> None:
        for name in list(self._probers):
            await self._stop_probing(name)
        for runtime in self.providers.values():
            await runtime.close()

    def _start_probing(self, runtime: ProviderRuntime) -> None:
        self._probers[runtime.name] = asyncio.create_task(self._probe_loop(runtime), name=f"probe:{runtime.name}")

    async def _stop_probing(self, name: str) -> None:
        task = self._probers.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_loop(self, runtime: ProviderRuntime) -> None:
        while True:
            interval = (
                LOADING_PROBE_INTERVAL_S
                if runtime.health != "ready" or _router_loading(runtime)
                else self.probe_interval_s
            )
            await asyncio.sleep(min(interval, self.probe_interval_s))
            try:
                await self.probe_once(runtime)
            except Exception:  # a probe bug must not end probing for good
                log.exception("probe of provider %s failed unexpectedly", runtime.name)


def _router_loading(runtime: ProviderRuntime) -> bool:
    """A router with a model loading is probed as often as a provider still loading, to route it soon."""
    return any(model["status"] == "loading" for model in runtime.router_models or ())
