"""The daemon's objects, built from config.json at start and connected to each other; nothing else.

What each object does lives in its own module: the provider registry (providers/registry.py), the key store
(gateway/key_store.py), the request pipeline (gateway/pipeline.py), the fleet (fleet/manager.py). The APIs
(api/) take the parts they use from here.
"""

from __future__ import annotations

from pathlib import Path

from gateway_core.archive.settings import ArchiveSettings
from gateway_core.archive.sqlite_archive import SqliteArchive
from gateway_core.callbacks.service import CallbackService
from gateway_core.callbacks.settings import CallbackSettings
from gateway_core.clock import SYSTEM_CLOCK, Clock
from gateway_core.contracts.history_views import ArchiveStatusView
from gateway_core.events import EventBus
from gateway_core.fleet.energy import EnergyMeter
from gateway_core.fleet.gpu_history import GpuHistory, ProviderRates
from gateway_core.fleet.gpu_sampler import DEFAULT_INTERVAL_S as DEFAULT_GPU_INTERVAL_S
from gateway_core.fleet.gpu_sampler import GpuSampler
from gateway_core.fleet.gpus import GpuSnapshot
from gateway_core.fleet.load_policy import PolicyStore
from gateway_core.fleet.manager import FleetManager
from gateway_core.fleet.on_demand import DEFAULT_MARGIN_BYTES, OnDemand
from gateway_core.fleet.vram import estimate_need
from gateway_core.gateway.accounting import LiveRequests, Stats
from gateway_core.gateway.failures import Failures
from gateway_core.gateway.key_store import KeyStore
from gateway_core.gateway.limits import RateLimiter
from gateway_core.gateway.pipeline import Pipeline
from gateway_core.jobs.scheduler import Scheduler
from gateway_core.jobs.service import JobService
from gateway_core.jobs.settings import JobSettings
from gateway_core.jobs.sqlite_store import SqliteJobStore
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.registry import PROBE_INTERVAL_S, ProviderRegistry
from gateway_core.store.config_store import ConfigStore

DEFAULT_BODY_CAP = 10 * 1024 * 1024


class GatewayState:
    def __init__(
        self,
        data_dir: Path,
        *,
        clock: Clock = SYSTEM_CLOCK,
        body_cap: int = DEFAULT_BODY_CAP,
        probe_interval_s: float = PROBE_INTERVAL_S,
        gpu_interval_s: float = DEFAULT_GPU_INTERVAL_S,
        archive: ArchiveSettings | None = None,
        jobs: JobSettings | None = None,
        callbacks: CallbackSettings | None = None,
        vram_margin_bytes: int = DEFAULT_MARGIN_BYTES,
    ):
        self.data_dir = data_dir
        self.clock = clock
        self.body_cap = body_cap
        self.started_at = clock.time()
        self.store = ConfigStore(data_dir / "config.json")
        self.metrics = GatewayMetrics()
        self.events = EventBus()
        self.limiter = RateLimiter(clock=clock.monotonic)
        callback_settings = callbacks or CallbackSettings()
        self.keys = KeyStore(
            self.store,
            self.limiter,
            self.events,
            clock,
            webhook_rotation_window_s=callback_settings.secret_rotation_window_s,
        )
        self.registry = ProviderRegistry(
            self.store, self.metrics, self.events, probe_interval_s=probe_interval_s, clock=clock
        )
        self.live = LiveRequests(clock)
        self.stats = Stats(clock)
        self.gpus = GpuSampler(self._publish_gpus, gpu_interval_s)
        self.gpu_history = GpuHistory(gpu_interval_s)  # an hour of each GPU's readings (fleet/gpu_history.py)
        self.provider_rates = ProviderRates(gpu_interval_s)  # and of each provider's rps and tps
        self.fleet = FleetManager(
            gpus=lambda: self.gpus.latest,
            register=self.registry.register_deployment,
            unregister=self.registry.unregister_deployment,
            publish=self.events.publish,
            on_deployment_changed=self.registry.reprobe,
            store=self.store,  # systemd deployments are kept there; policies changed by operators are read there
        )
        self.on_demand = OnDemand(
            fleet=self.fleet,
            registry=self.registry,
            gpus=lambda: self.gpus.latest,
            sample_gpus=self.gpus.sample_once,
            policies=PolicyStore(self.store),
            publish=self.events.publish,
            clock=clock,
            estimate=estimate_need,
            margin_bytes=vram_margin_bytes,
        )
        self.failures = Failures(self.metrics)
        archive_settings = archive or ArchiveSettings(directory=data_dir / "archive")
        self.archive = SqliteArchive(
            archive_settings, clock=clock, metrics=self.metrics.archive, on_status=self._publish_archive
        )
        self.energy = EnergyMeter(self._gpus_of, clock.monotonic)
        self.pipeline = Pipeline(
            keys=self.keys.ring,
            registry=self.registry,
            limiter=self.limiter,
            live=self.live,
            stats=self.stats,
            metrics=self.metrics,
            events=self.events,
            failures=self.failures,
            archive=self.archive,
            gpu_meter=self.energy,
            body_cap=body_cap,
            archive_body_cap=archive_settings.body_cap,
            clock=clock,
        )
        self.job_settings = jobs or JobSettings()
        self.job_store = SqliteJobStore(data_dir / "jobs.sqlite")
        self.callbacks = CallbackService(
            data_dir / "callbacks.sqlite",
            callback_settings,
            secrets=self.keys.webhook_secrets,
            events=self.events,
            metrics_registry=self.metrics.registry,
            clock=clock,
        )
        self.jobs = JobService(
            self.job_store, registry=self.registry, events=self.events, clock=clock, callbacks=self.callbacks
        )
        self.scheduler = Scheduler(
            pipeline=self.pipeline,
            registry=self.registry,
            metrics=self.metrics.queue,
            settings=self.job_settings,
            on_started=self.jobs.on_started,
            on_finished=self.jobs.on_finished,
            on_retry=self.jobs.on_retry,
            clock=clock,
        )
        self.jobs.attach(self.scheduler)
        self.pipeline.warmer = self.scheduler.warmer = self.on_demand  # a cold model is loaded, not refused

    def _publish_gpus(self, snapshot: GpuSnapshot) -> None:
        self.energy.on_sample(snapshot)
        self.on_demand.on_gpu_sample(snapshot)
        self.energy.forget()  # providers and deployments change: their GPUs are looked up again, once a sample
        self._record_history(snapshot)
        self.events.publish("gpus", snapshot.to_dict())

    def _record_history(self, snapshot: GpuSnapshot) -> None:
        """The GPU sampler's tick also times the providers' rate history: one clock for both."""
        at = self.clock.time()
        self.gpu_history.record(snapshot, at)
        counters = self.stats.by["provider"]
        names = list(self.registry.providers)
        self.provider_rates.forget(names)
        totals = [(name, counters.get(name)) for name in names]  # .get: the counters are a defaultdict
        self.provider_rates.record(
            ((name, c.requests if c else 0, c.completion_tokens if c else 0) for name, c in totals), at
        )

    def _publish_archive(self, status: ArchiveStatusView) -> None:
        self.events.publish("archive", status)

    def _gpus_of(self, provider: str) -> tuple[int, ...] | None:
        """The GPUs of this box a provider runs on: as configured on it, else its deployment's."""
        runtime = self.registry.providers.get(provider)
        if runtime is not None and runtime.config.gpus is not None:
            return tuple(runtime.config.gpus)
        return self.fleet.gpus_of(provider)

    async def start(self) -> None:
        await self.archive.start()
        await self.registry.start()
        self.keys.start()
        await self.gpus.sample_once()  # so the first snapshot a console sees already has the GPUs
        self.gpus.start()
        await self.fleet.connect()
        for spec in self.fleet.deployment_specs().values():
            if spec.router is not None:  # a cold router lists its directory's models until it first answers
                self.registry.seed_router_models(spec.name, spec.model_path)
        await self.on_demand.start()
        await self.callbacks.start()  # before the jobs: a final job whose callback was not yet enqueued is, now
        await self.jobs.start()  # last: its jobs run on the providers and are archived like any request

    async def drain(self, drain_timeout_s: float) -> None:
        """SIGTERM: no new jobs; running ones finish up to the timeout, the rest stay queued on disk."""
        await self.jobs.drain(drain_timeout_s)

    async def close(self) -> None:
        await self.jobs.close()  # first: the scheduler stops before the store closes, and before what jobs use
        await self.callbacks.close()
        await self.keys.close()
        await self.gpus.stop()
        await self.on_demand.close()
        await self.fleet.close()
        await self.registry.close()
        await self.archive.close()  # after everything that ends requests: their rows are written too
        self.store.close()
