"""Models on demand: start a deployment when a request for its model arrives, stop it when it has been idle for
its `idle_ttl`, and make room for it on its GPUs by stopping idle ones, judged by measured free memory.

Every managed deployment has a record here, whatever its policy: an `always` one is shown (warm, cold or failed
as observed) but never started or stopped by Corral. An on-demand one moves through
cold -> loading -> warm -> unloading -> cold, or to failed (a load that failed or passed its load_timeout; the
next request tries again).

- **One start however many wait.** Each record has at most one load running (`_loading`); every request, job or
  operator asking for it awaits the same one, shielded, so a client that leaves does not cancel the load.
- **Room by measurement** (eviction.py): before a start on GPUs, the model's need (what NVML measured for it when
  it last ran, else the GGUF estimate) is compared with the GPUs' measured free memory less a margin. Loads on
  the same GPU run one at a time, so two starts never both count the same free memory.
- **Never stop a busy one.** Only idle, unpinned, warm on-demand deployments are stopped; when only busy ones
  stand in the way, the start waits for them (within its load_timeout), else it is refused with a 503 that
  names what holds the memory.
- **Loading is not failing.** While a deployment loads, its provider is not routed to; nothing is counted
  against it and its circuit stays as it was.

Each start, stop and refusal is logged and published ("fleet.decision"); each change of a record is published
("deployment"), its use at most once a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway_core.clock import Clock
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.events import Publish
from gateway_core.contracts.fleet_views import LoadDecisionView, OnDemandState, OnDemandView
from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.eviction import Holder, RoomPlan, plan_room
from gateway_core.fleet.gpus import GpuSnapshot
from gateway_core.fleet.load_policy import LoadPolicy, PolicyStore, format_duration
from gateway_core.fleet.manager import FleetManager
from gateway_core.fleet.units import MiB, format_bytes
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.providers.runtime import ProviderRuntime

log = logging.getLogger("corral.fleet")

DEFAULT_MARGIN_BYTES = 512 * MiB
TICK_S = 1.0  # idle unloads, new deployments, use published
READY_POLL_S = 0.02  # while a started deployment loads: how often its /health is asked (a loopback GET)
SETTLE_S = 15.0  # after a stop, how long the driver may take to show the memory freed
SETTLE_POLL_S = 0.25
UNLOAD_WAIT_S = 30.0  # an operator's unload waits this long for requests in flight
LOG_LINES = 12  # of a failed load's log, in its error
JOB_RETRY_S = 30.0  # after a failed load, how long queued jobs wait before they have it tried again
FAILED_HOLD_S = 10.0  # after a failed load, requests get its error at once rather than a start each


@dataclass
class Record:
    """One deployment as OnDemand keeps it."""

    spec: DeploymentSpec
    policy: LoadPolicy
    state: OnDemandState = "cold"
    reason: str = ""
    waiting: int = 0
    failed_mono: float = 0.0  # when its last load failed (monotonic)
    loaded_mono: float = 0.0  # when it last became warm (monotonic): idle is counted from here or its last use
    last_loaded_at: float | None = None
    last_load_s: float | None = None
    measured_bytes: int | None = None
    estimated_bytes: int | None = None
    pid: int | None = None
    loading: asyncio.Task[None] | None = None
    unloading: asyncio.Task[None] | None = None
    published: OnDemandView | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def need_bytes(self) -> int | None:
        return self.measured_bytes or self.estimated_bytes


class OnDemand:
    def __init__(
        self,
        *,
        fleet: FleetManager,
        registry: ProviderRegistry,
        gpus: Callable[[], GpuSnapshot],
        sample_gpus: Callable[[], Awaitable[GpuSnapshot]],
        policies: PolicyStore,
        publish: Publish,
        clock: Clock,
        estimate: Callable[[DeploymentSpec], int | None],
        margin_bytes: int = DEFAULT_MARGIN_BYTES,
    ) -> None:
        self._fleet = fleet
        self._registry = registry
        self._gpus = gpus
        self._sample_gpus = sample_gpus
        self._policies = policies
        self._publish = publish
        self._time = clock.time
        self._monotonic = clock.monotonic
        self._estimate = estimate
        self.margin_bytes = margin_bytes
        self._records: dict[str, Record] = {}
        self._gpu_locks: dict[int, asyncio.Lock] = {}
        self._stopped_at: dict[int, float] = {}  # GPU -> when a deployment on it last stopped (monotonic)
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()

    # -- life ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.refresh()
        self._ticker = asyncio.create_task(self._tick_forever(), name="on-demand")

    async def close(self) -> None:
        for record in self._records.values():
            if record.measured_bytes:
                self._policies.remember_measured(record.name, record.measured_bytes)
        tasks = [t for t in (self._ticker, *self._background) if t is not None]
        for record in self._records.values():
            tasks += [t for t in (record.loading, record.unloading) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.refresh()
                self._unload_idle()
            except Exception:  # a bug here must not end idle unloads for good
                log.exception("on-demand: the periodic check failed")

    # -- what the admin API and the console read ---------------------------------------------------------

    def views(self) -> list[OnDemandView]:
        return [self._view(record) for record in self._records.values()]

    def view(self, name: str) -> OnDemandView:
        return self._view(self._require(name))

    def is_on_demand(self, provider: str) -> bool:
        record = self._records.get(provider)
        return record is not None and record.policy.on_demand

    # -- keeping the records in step with the fleet -------------------------------------------------------

    def refresh(self) -> None:
        """Add the deployments the fleet has and drop the ones it no longer has; observe the others' state."""
        specs = self._fleet.deployment_specs()
        if self._fleet.latest["engine"]["state"] == "ok":  # an engine that failed to answer removed nothing
            for name in [n for n in self._records if n not in specs]:
                gone = self._records.pop(name)
                for task in (gone.loading, gone.unloading):
                    if task is not None:
                        task.cancel()
                self._policies.remove(name)  # a later deployment of the name starts from its own spec
                self._publish("deployment.removed", {"name": name})
        for name, spec in specs.items():
            record = self._records.get(name)
            if record is None:
                record = self._records[name] = Record(spec, self._policies.get(name) or spec.load)
                record.estimated_bytes = self._estimate(spec)
                record.measured_bytes = self._policies.measured(name)  # when it last ran, maybe before a restart
            else:
                record.spec = spec
            self._observe(record)
            self._publish_if_changed(record)

    def _observe(self, record: Record) -> None:
        """A record no load or unload is moving takes the state its provider shows."""
        if self._busy_changing(record):
            return
        provider = self._registry.get(record.name)
        if provider is not None and provider.health == "ready":
            if record.state != "warm":
                record.state, record.reason, record.loaded_mono = "warm", "", self._monotonic()
                self._remember_pid(record)  # running already (an `always` one, or at our start): how NVML lists it
        elif provider is not None and provider.health == "loading":
            record.state, record.reason = "loading", "started outside Corral; llama-server is loading its model"
        elif record.state != "failed":
            record.state, record.reason = "cold", ""

    @staticmethod
    def _busy_changing(record: Record) -> bool:
        return any(task is not None and not task.done() for task in (record.loading, record.unloading))

    # -- the pipeline's and the scheduler's seam ---------------------------------------------------------

    def cold(self, candidates: list[ProviderRuntime]) -> list[str]:
        """The on-demand deployments among a model's candidates that are not warm (to be loaded)."""
        return [
            p.name
            for p in candidates
            if (record := self._records.get(p.name)) is not None and record.policy.on_demand and record.state != "warm"
        ]

    async def warm(self, names: list[str], why: str) -> GatewayError | None:
        """Load one of these deployments (one already loading, else the first by priority) and wait until it is
        warm; the error to answer when it cannot be."""
        records = [self._records[n] for n in names if n in self._records]
        if not records:
            return None
        loading = [r for r in records if r.loading is not None and not r.loading.done()]
        record = loading[0] if loading else max(records, key=lambda r: r.policy.priority)
        if record.state == "failed" and self._monotonic() - record.failed_mono < FAILED_HOLD_S:
            return GatewayError(
                503,
                f"{record.reason}\n(a request tries it again {FAILED_HOLD_S:g} s after it failed; "
                f"`corral fleet load {record.name}` tries it now)",
                code="model_load_failed",
                headers={"retry-after": str(int(FAILED_HOLD_S))},
            )
        record.waiting += 1
        try:
            await self._load(record, why)
        except GatewayError as error:
            return error
        finally:
            record.waiting -= 1
        return None

    def warm_soon(self, names: list[str], why: str) -> None:
        """Start loading without waiting (a queued job's model): the scheduler hears of it as a freed slot."""
        records = [self._records[n] for n in names if n in self._records]
        if any(r.loading is not None and not r.loading.done() for r in records):
            return  # the scheduler asks at every fill; one load is enough
        if any(r.state == "failed" and self._monotonic() - r.failed_mono < JOB_RETRY_S for r in records):
            return  # it failed a moment ago: queued jobs try it again later (a request, or the operator, at once)
        task = asyncio.ensure_future(self.warm(names, why))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the operator's actions --------------------------------------------------------------------------

    async def load(self, name: str) -> OnDemandView:
        record = self._require(name)
        await self._load(record, "loaded by the operator")
        return self._view(record)

    async def unload(self, name: str) -> OnDemandView:
        record = self._require(name)
        provider = self._registry.get(name)
        deadline = self._monotonic() + UNLOAD_WAIT_S
        while provider is not None and (provider.in_flight or record.waiting):
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                raise GatewayError(
                    409,
                    f"deployment '{name}' still has {provider.in_flight} request(s) in flight after "
                    f"{UNLOAD_WAIT_S:g} s; drain it first (`corral fleet drain {name}`), then unload",
                    param="name",
                    code="deployment_busy",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._registry.slot_released.wait(), remaining)
        if record.loading is not None and not record.loading.done():
            await asyncio.shield(record.loading)
        if record.state in ("warm", "loading", "failed"):
            await self._unload(record, "unloaded by the operator")
        return self._view(record)

    def set_policy(self, name: str, changes: dict[str, object]) -> OnDemandView:
        """Change a deployment's policy (pydantic's ValidationError for a bad field); kept in config.json."""
        record = self._require(name)
        policy = LoadPolicy.model_validate({**record.policy.model_dump(), **changes})
        self._policies.put(name, policy)
        was_on_demand, record.policy = record.policy.on_demand, policy
        log.info("deployment %s: load policy %s", name, policy.model_dump())
        if was_on_demand and not policy.on_demand and record.state in ("cold", "failed"):
            # "always up" means up: started now (making room as any load does), without waiting for it here.
            task = asyncio.ensure_future(self._load(record, "its policy became always"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(_retrieve)
        self._publish_if_changed(record)
        return self._view(record)

    # -- loading -----------------------------------------------------------------------------------------

    async def _load(self, record: Record, why: str) -> None:
        """The record's one load: started here if none runs, awaited by everyone (shielded)."""
        if record.state == "warm" and not self._busy_changing(record):
            return
        if record.loading is None or record.loading.done():
            record.loading = asyncio.ensure_future(self._run_load(record, why))
            record.loading.add_done_callback(_retrieve)
        await asyncio.shield(record.loading)

    async def _run_load(self, record: Record, why: str) -> None:
        if record.unloading is not None and not record.unloading.done():
            await asyncio.shield(record.unloading)
        record.state, record.reason = "loading", why
        self._publish_if_changed(record)
        gpus = self._gpu_indices(record)
        started = self._monotonic()  # reset once room is made: waiting for it is not loading
        locks = [self._gpu_locks.setdefault(index, asyncio.Lock()) for index in sorted(gpus)]
        try:
            async with contextlib.AsyncExitStack() as held:
                for lock in locks:
                    await held.enter_async_context(lock)
                need, free = await self._make_room(record, gpus, why)
                self._decide("start", record, why, gpus=gpus, need=need, free=free)
                started = self._monotonic()
                await self._fleet.start_deployment(record.name)
                await self._wait_ready(record, started + record.policy.load_timeout_s)
                record.pid = await self._fleet.main_pid(record.name)  # how NVML will list it
        except GatewayError as error:
            if error.code == "insufficient_gpu_memory":  # refused, not failed: it stays cold, saying why
                record.state, record.reason = "cold", error.message
            else:
                record.state, record.reason, record.failed_mono = "failed", error.message, self._monotonic()
            self._publish_if_changed(record)
            raise
        except Exception as error:  # the engine or systemd refused; said as a 503 to whoever waits
            record.failed_mono = self._monotonic()
            record.state, record.reason = "failed", f"could not start deployment '{record.name}': {error}"
            self._publish_if_changed(record)
            log.warning("on-demand: %s", record.reason)
            raise GatewayError(503, record.reason, code="model_load_failed") from error
        record.state, record.reason = "warm", ""
        record.last_load_s = round(self._monotonic() - started, 3)
        record.last_loaded_at = self._time()
        record.loaded_mono = self._monotonic()
        log.info("on-demand: %s is warm after %.2f s", record.name, record.last_load_s)
        self._publish_if_changed(record)
        self._registry.signal_slot_released()  # queued jobs for its model may start now

    async def _wait_ready(self, record: Record, deadline: float) -> None:
        """Until its /health answers 200 (probed here, not at the next scheduled probe), within load_timeout."""
        name = record.name
        while True:
            await self._registry.reprobe(name)
            provider = self._registry.get(name)
            # Ready in time: seen ready before its load_timeout had passed (one seen ready only after it took longer).
            if provider is not None and provider.health == "ready" and self._monotonic() < deadline:
                return
            exited = self._fleet.exited(name)
            if exited is not None or self._monotonic() >= deadline:
                problem = (
                    f"exited ({exited}) while loading"
                    if exited is not None
                    else f"did not answer /health with 200 within its load_timeout of "
                    f"{format_duration(record.policy.load_timeout_s)}"
                )
                tail = await self._fleet.log_tail(name, LOG_LINES)
                with contextlib.suppress(Exception):  # stopped, so a half-loaded model holds no memory
                    await self._fleet.stop_deployment(name)
                await self._registry.reprobe(name)
                message = f"deployment '{name}' {problem}; the last lines of its log:\n{tail}".rstrip()
                log.warning("on-demand: %s", message)
                raise GatewayError(503, message, code="model_load_failed", headers={"retry-after": "10"})
            await asyncio.sleep(READY_POLL_S)

    # -- making room -------------------------------------------------------------------------------------

    async def _make_room(self, record: Record, gpus: tuple[int, ...], why: str) -> tuple[int | None, int | None]:
        """Stop what must be stopped for the record to fit; its need and its GPUs' free memory as decided."""
        need = record.need_bytes
        if not gpus or need is None or self._gpus().state != "ok":
            return need, None
        snapshot = await self._sample_gpus()  # now: the periodic sample may predate a load that just ended
        deadline = self._monotonic() + record.policy.load_timeout_s
        settled = False
        while True:
            free = self._free(snapshot, record)
            plan = plan_room(need, gpus, free, self.margin_bytes, self._holders(snapshot, record))
            if plan.fits and not plan.stop:
                return need, plan.free_bytes
            if plan.fits:
                for holder in plan.stop:
                    victim = self._records[holder.name]
                    await self._unload(
                        victim,
                        f"to make room for '{record.name}' on GPU {_gpu_list(gpus)} (it needs {format_bytes(need)}, "
                        f"{format_bytes(max(0, plan.free_bytes))} free beyond the margin)",
                        for_deployment=record.name,
                    )
                snapshot = await self._settle(need, gpus, record)
                settled = True
                continue
            if plan.wait_for and self._monotonic() < deadline:
                names = ", ".join(h.name for h in plan.wait_for)
                record.reason = f"{why}; waiting for requests on {names} to end to make room"
                self._publish_if_changed(record)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._registry.slot_released.wait(), 1.0)
                snapshot = await self._sample_gpus()
                continue
            if not settled and any(self._monotonic() - self._stopped_at.get(g, -SETTLE_S) < SETTLE_S for g in gpus):
                # A deployment stopped here a moment ago: the last sample may still count its memory.
                snapshot = await self._settle(need, gpus, record)
                settled = True
                continue
            raise self._refusal(record, gpus, need, plan, snapshot)

    def _free(self, snapshot: GpuSnapshot, loading: Record) -> dict[int, int]:
        """Each GPU's free memory as measured, less what warm deployments whose process the sample does not list
        yet will use (one that answered a moment ago may not have shown in NVML)."""
        free = {d.index: (d.memory_total_bytes or 0) - (d.memory_used_bytes or 0) for d in snapshot.devices}
        listed = {p.pid for d in snapshot.devices for p in d.processes}
        for record in self._records.values():
            if record is loading or record.state != "warm" or (record.pid is not None and record.pid in listed):
                continue
            gpus = self._gpu_indices(record)
            for gpu in gpus:
                if gpu in free:
                    free[gpu] -= (record.need_bytes or 0) // len(gpus)
        return free

    async def _settle(self, need: int, gpus: tuple[int, ...], record: Record) -> GpuSnapshot:
        """Sample the GPUs until the stopped deployments' memory shows as free (the driver frees it at exit)."""
        deadline = self._monotonic() + SETTLE_S
        while True:
            snapshot = await self._sample_gpus()
            free = sum(amount for gpu, amount in self._free(snapshot, record).items() if gpu in gpus)
            if free - self.margin_bytes * len(gpus) >= need or self._monotonic() >= deadline:
                return snapshot
            await asyncio.sleep(SETTLE_POLL_S)

    def _holders(self, snapshot: GpuSnapshot, loading: Record) -> list[Holder]:
        """What holds memory on the GPUs: the fleet's deployments (on demand or not), and other processes."""
        holders: list[Holder] = []
        pids: set[int] = set()
        for record in self._records.values():
            if record is loading or record.state not in ("warm", "loading", "unloading"):
                continue
            gpus = self._gpu_indices(record)
            if not gpus:
                continue
            if record.pid is not None:
                pids.add(record.pid)
            provider = self._registry.get(record.name)
            in_flight = provider.in_flight if provider is not None else 0
            holders.append(
                Holder(
                    name=record.name,
                    gpus=gpus,
                    memory_bytes=record.need_bytes or 0,
                    on_demand=record.policy.on_demand and record.state == "warm" and not self._busy_changing(record),
                    pinned=record.policy.pin,
                    priority=record.policy.priority,
                    last_used=self._last_used_mono(record),
                    busy=bool(in_flight or record.waiting),
                )
            )
        for device in snapshot.devices:
            for process in device.processes:
                if process.pid not in pids and process.used_memory_bytes:
                    label = f"pid {process.pid}" + (f" ({process.name})" if process.name else "")
                    holders.append(Holder(label, (device.index,), process.used_memory_bytes))
        return holders

    def _refusal(
        self, record: Record, gpus: tuple[int, ...], need: int, plan: RoomPlan, snapshot: GpuSnapshot
    ) -> GatewayError:
        holding = []
        listed = 0
        for holder in self._holders(snapshot, record):
            share = holder.share_on(gpus)
            if share <= 0:
                continue
            listed += share
            if holder.name in self._records:
                other = self._records[holder.name]
                kind = "pinned" if other.policy.pin else ("on demand" if other.policy.on_demand else "always")
                busy = ", busy" if holder.busy else ""
                holding.append(f"{holder.name} ({kind}{busy}) {format_bytes(share)}")
            else:
                holding.append(f"{holder.name} {format_bytes(share)}")
        used = sum(d.memory_used_bytes or 0 for d in snapshot.devices if d.index in gpus)
        if used - listed > 0:  # the driver's own use, other containers' processes, or a deployment not measured yet
            holding.append(f"memory no listed process accounts for {format_bytes(used - listed)}")
        free = max(0, plan.free_bytes)
        message = (
            f"model '{record.name}' needs {format_bytes(need)} on GPU {_gpu_list(gpus)} (keeping "
            f"{format_bytes(self.margin_bytes)} free on each), {format_bytes(free)} is free, and stopping what "
            f"may be stopped would not make room. Holding the memory: {'; '.join(holding) or 'nothing Corral knows'}. "
            "Unload or unpin one of them (`corral fleet unload NAME`), or deploy the model with a smaller ctx-size"
        )
        self._decide("refuse", record, message, gpus=gpus, need=need, free=free)
        return GatewayError(503, message, code="insufficient_gpu_memory", headers={"retry-after": "30"})

    # -- stopping ----------------------------------------------------------------------------------------

    def _unload_idle(self) -> None:
        now = self._monotonic()
        for record in self._records.values():
            if not record.policy.on_demand or record.state != "warm" or self._busy_changing(record):
                continue
            provider = self._registry.get(record.name)
            if provider is None or provider.in_flight or record.waiting:
                continue
            if now - self._last_used_mono(record) >= record.policy.idle_ttl_s:
                idle = f"idle for {format_duration(record.policy.idle_ttl_s)} (its idle_ttl)"
                task = asyncio.ensure_future(self._unload(record, idle))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _unload(self, record: Record, why: str, for_deployment: str | None = None) -> None:
        if record.unloading is None or record.unloading.done():
            record.unloading = asyncio.ensure_future(self._run_unload(record, why, for_deployment))
            record.unloading.add_done_callback(_retrieve)
        await asyncio.shield(record.unloading)

    async def _run_unload(self, record: Record, why: str, for_deployment: str | None) -> None:
        record.state, record.reason = "unloading", why
        self._registry.set_cold(record.name, f"stopping (on demand): {why}")  # routed to no more from here
        self._publish_if_changed(record)
        self._decide("stop", record, why, gpus=self._gpu_indices(record), for_deployment=for_deployment)
        if record.measured_bytes:
            self._policies.remember_measured(record.name, record.measured_bytes)
        try:
            await self._fleet.stop_deployment(record.name)
        finally:
            for gpu in self._gpu_indices(record):
                self._stopped_at[gpu] = self._monotonic()
            await self._registry.reprobe(record.name)
            record.state, record.reason, record.pid = "cold", "", None
            self._registry.set_cold(record.name, "cold (on demand): started by the next request")
            self._publish_if_changed(record)

    # -- bookkeeping -------------------------------------------------------------------------------------

    def on_gpu_sample(self, snapshot: GpuSnapshot) -> None:
        """Note what each warm deployment's process uses, for its next start's need."""
        if snapshot.state != "ok":
            return
        for record in self._records.values():
            if record.state != "warm" or record.pid is None:
                continue
            used = sum(p.used_memory_bytes or 0 for d in snapshot.devices for p in d.processes if p.pid == record.pid)
            if used and used != record.measured_bytes:
                record.measured_bytes = used
                self._publish_if_changed(record)

    def _remember_pid(self, record: Record) -> None:
        async def look() -> None:
            record.pid = await self._fleet.main_pid(record.name)

        task = asyncio.ensure_future(look())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _gpu_indices(self, record: Record) -> tuple[int, ...]:
        return self._fleet.gpus_of(record.name) or ()

    def _last_used_mono(self, record: Record) -> float:
        provider = self._registry.get(record.name)
        used = provider.last_busy_mono if provider is not None else None
        return max(used or 0.0, record.loaded_mono)

    def _require(self, name: str) -> Record:
        record = self._records.get(name)
        if record is None:
            self.refresh()  # deployed a moment ago: the inventory may not have been read since
            record = self._records.get(name)
        if record is None:
            raise GatewayError(
                404,
                f"no deployment named '{name}'; `corral fleet list` shows the deployments",
                param="name",
                code="deployment_not_found",
            )
        return record

    def _view(self, record: Record) -> OnDemandView:
        provider = self._registry.get(record.name)
        used_mono = provider.last_busy_mono if provider is not None else None
        return {
            "name": record.name,
            "kind": record.spec.kind,
            "policy": record.policy.view(),
            "state": record.state,
            "reason": record.reason,
            "in_flight": provider.in_flight if provider is not None else 0,
            "waiting": record.waiting,
            "last_used_at": round(self._time() - (self._monotonic() - used_mono), 3) if used_mono else None,
            "last_loaded_at": record.last_loaded_at,
            "last_load_s": record.last_load_s,
            "measured_memory_bytes": record.measured_bytes,
            "estimated_memory_bytes": record.estimated_bytes,
            "gpus": list(self._gpu_indices(record)),
        }

    def _publish_if_changed(self, record: Record) -> None:
        view = self._view(record)
        if view != record.published:
            record.published = view
            self._publish("deployment", view)

    def _decide(
        self,
        action: str,
        record: Record,
        reason: str,
        *,
        gpus: tuple[int, ...] = (),
        need: int | None = None,
        free: int | None = None,
        for_deployment: str | None = None,
    ) -> None:
        assert action in ("start", "stop", "refuse")
        decision: LoadDecisionView = {
            "at": self._time(),
            "action": action,  # type: ignore[typeddict-item]  # checked just above
            "deployment": record.name,
            "reason": reason,
            "for_deployment": for_deployment,
            "gpus": list(gpus),
            "need_bytes": need,
            "free_bytes": free,
        }
        log.info("on-demand: %s %s: %s", action, record.name, reason)
        self._publish("fleet.decision", decision)


def _gpu_list(gpus: tuple[int, ...]) -> str:
    return ",".join(str(index) for index in gpus)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a load's or unload's outcome as seen: its waiters got it, and one with none is not an error."""
    if not task.cancelled():
        task.exception()
