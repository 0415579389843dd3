"""Everything the daemon holds in memory, built from config.json at start and written through on change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from gateway_core.events import EventBus
from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.gpu_sampler import DEFAULT_INTERVAL_S as DEFAULT_GPU_INTERVAL_S
from gateway_core.fleet.gpu_sampler import GpuSampler
from gateway_core.fleet.manager import FleetManager
from gateway_core.gateway.accounting import LiveRequests, Stats
from gateway_core.gateway.keys import ApiKey, KeyRing
from gateway_core.gateway.limits import RateLimiter
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.health import probe
from gateway_core.providers.runtime import ProviderRuntime
from gateway_core.store.config_store import ConfigStore

log = logging.getLogger("corral.core")

METRIC_STATES = ("ready", "loading", "down", "circuit_open")
DEFAULT_BODY_CAP = 10 * 1024 * 1024
PROBE_INTERVAL_S = 5.0
LAST_USED_FLUSH_S = 30.0  # key last-used times are kept in memory on the hot path and saved this often
LOADING_PROBE_INTERVAL_S = 1.0


class GatewayState:
    def __init__(
        self,
        data_dir: Path,
        *,
        body_cap: int = DEFAULT_BODY_CAP,
        probe_interval_s: float = PROBE_INTERVAL_S,
        gpu_interval_s: float = DEFAULT_GPU_INTERVAL_S,
    ):
        self.data_dir = data_dir
        self.store = ConfigStore(data_dir / "config.json")
        self.body_cap = body_cap
        self.probe_interval_s = probe_interval_s
        self.started_at = time.time()
        stored_keys = self.store.all("keys")
        self.keys = KeyRing([ApiKey.from_stored(record) for record in stored_keys])
        self.keys.last_used.update({r["id"]: r["last_used_at"] for r in stored_keys if r.get("last_used_at")})
        self._flushed_last_used: dict[str, float] = dict(self.keys.last_used)
        self.providers: dict[str, ProviderRuntime] = {}
        for record in self.store.all("providers"):
            config = ProviderConfig.model_validate(record)
            self.providers[config.name] = ProviderRuntime(config)
        self.limiter = RateLimiter()
        self.metrics = GatewayMetrics()
        self.live = LiveRequests()
        self.stats = Stats()
        self.events = EventBus()
        self.gpus = GpuSampler(lambda snapshot: self.events.publish("gpus", snapshot.to_dict()), gpu_interval_s)
        self.fleet = FleetManager(
            gpus=lambda: self.gpus.latest,
            register=self._register_deployment,
            unregister=self._unregister_deployment,
            publish=self.events.publish,
            on_deployment_changed=self._reprobe,
        )
        self._probers: dict[str, asyncio.Task[None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        # Replaced on every release, so waiters wake once per freed slot without a lock.
        self.slot_released = asyncio.Event()

    # -- providers ------------------------------------------------------------------------------------

    def signal_slot_released(self) -> None:
        released, self.slot_released = self.slot_released, asyncio.Event()
        released.set()

    def serving(self, model: str) -> list[ProviderRuntime]:
        return [p for p in self.providers.values() if p.config.enabled and model in p.models]

    def models(self) -> dict[str, list[str]]:
        """Public model name -> the providers that serve it (enabled ones only)."""
        served: dict[str, list[str]] = {}
        for provider in self.providers.values():
            if provider.config.enabled:
                for model in provider.models:
                    served.setdefault(model, []).append(provider.name)
        return served

    async def put_provider(self, config: ProviderConfig) -> ProviderRuntime:
        old = self.providers.get(config.name)
        runtime = ProviderRuntime(config)
        self.store.put("providers", "name", config.stored())
        self.providers[config.name] = runtime
        if old is not None:
            await self._stop_probing(config.name)
            await old.close()
        await self.probe_once(runtime)
        self._start_probing(runtime)
        return runtime

    async def remove_provider(self, name: str) -> bool:
        runtime = self.providers.pop(name, None)
        if runtime is None:
            return False
        self.store.remove("providers", "name", name)
        await self._stop_probing(name)
        await runtime.close()
        self.metrics.remove_provider(name)
        self.events.publish("provider.removed", {"name": name})
        log.info("provider %s removed", name)
        return True

    async def probe_once(self, runtime: ProviderRuntime) -> None:
        result = await probe(runtime.config, runtime.session)
        runtime.mark_probed()
        changed = (result.health, result.detail) != (runtime.health, runtime.health_detail)
        if result.health == "ready":
            runtime.discovered_models = result.models
            runtime.discovered_capacity = result.capacity
            if runtime.breaker.state != "closed" and runtime.health != "ready":
                runtime.breaker.record_success()
        previous = runtime.state
        runtime.health, runtime.health_detail = result.health, result.detail
        self.metrics.provider_state(runtime.name, runtime.state if runtime.state in METRIC_STATES else "down")
        if changed:
            if runtime.state != previous:
                log.info("provider %s: %s -> %s (%s)", runtime.name, previous, runtime.state, result.detail)
            self.events.publish("provider", runtime.summary())

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
            interval = LOADING_PROBE_INTERVAL_S if runtime.health != "ready" else self.probe_interval_s
            await asyncio.sleep(min(interval, self.probe_interval_s))
            try:
                await self.probe_once(runtime)
            except Exception:  # a probe bug must not end probing for good
                log.exception("probe of provider %s failed unexpectedly", runtime.name)

    async def start(self) -> None:
        await asyncio.gather(*(self.probe_once(p) for p in self.providers.values()))
        for runtime in self.providers.values():
            self._start_probing(runtime)
        self._flusher = asyncio.create_task(self._flush_loop(), name="flush-last-used")
        await self.gpus.sample_once()  # so the first snapshot a console sees already has the GPUs
        self.gpus.start()
        await self.fleet.connect()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(LAST_USED_FLUSH_S)
            self.flush_last_used()

    def flush_last_used(self) -> None:
        for key_id, used_at in list(self.keys.last_used.items()):
            key = self.keys.find(key_id)
            if key is not None and self._flushed_last_used.get(key_id) != used_at:
                self.store.put("keys", "id", {**key.stored(), "last_used_at": used_at})
                self._flushed_last_used[key_id] = used_at

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.flush_last_used()
        await self.gpus.stop()
        await self.fleet.close()
        for name in list(self._probers):
            await self._stop_probing(name)
        for runtime in self.providers.values():
            await runtime.close()
        self.store.close()

    async def _register_deployment(self, spec: DeploymentSpec) -> None:
        """A healthy deployment is routed at once, as a llama-server provider under its own name."""
        config = ProviderConfig(
            name=spec.name, type="llama-server", base_url=spec.base_url, models={spec.name: spec.name}
        )
        await self.put_provider(config)

    async def _unregister_deployment(self, name: str) -> None:
        await self.remove_provider(name)

    async def _reprobe(self, name: str) -> None:
        runtime = self.providers.get(name)
        if runtime is not None:
            await self.probe_once(runtime)

    # -- keys -----------------------------------------------------------------------------------------

    def key_view(self, key: ApiKey) -> dict[str, object]:
        return {**key.public_view(self.keys.last_used.get(key.id)), "usage": self.limiter.usage(key.id)}

    def save_key(self, key: ApiKey) -> None:
        self.store.put("keys", "id", {**key.stored(), "last_used_at": self.keys.last_used.get(key.id)})
        self.keys.put(key)
        self.events.publish("key", self.key_view(key))

    def delete_key(self, key: ApiKey) -> None:
        self.store.remove("keys", "id", key.id)
        self.keys.remove(key.id)
        self.limiter.forget(key.id)
        self.events.publish("key.removed", {"id": key.id})
