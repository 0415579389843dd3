"""Which queued job runs next, and where: only on free provider capacity, fair across keys, never starving
synchronous requests.

A job starts only when a provider that serves its model (or its pinned provider) is routable and has a free
slot: in flight below its slots, which are llama-server's reported slots (capped by the configured max
concurrency), else the max concurrency, else 1. While synchronous requests wait for a slot (the pipeline counts
them), jobs hold at most `queue_share` of each provider's slots; so they do on a provider with synchronous
requests in flight (which may be waiting in llama-server's own queue, unseen) and for SYNC_HOLD_S after, so
synchronous traffic finds slots free. The next job is the fair queue's
(fair_queue.py): round-robin across keys with queued work, by priority then order within one; a key at one of
its limits is skipped until a slot frees (concurrency) or its window allows again (rpm, tpm). A failed attempt
runs again on another provider serving the model when there is one.

Free slots are filled on a new job, a finished attempt, a key's limit lifting, and every freed slot: the
registry calls the scheduler as the slot is released (`release_listeners`), and the fill runs right after that
call, so a slot stands empty for one turn of the event loop rather than the three a woken task would take
(on a loaded 2-core box a turn is several ms, against a job's tens). While jobs are queued and none can start,
it also looks again every RECHECK_S, since a provider coming back (health, circuit cooldown) signals nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from gateway_core.clock import SYSTEM_CLOCK, Clock
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.jobs import JobError, JobState
from gateway_core.gateway.balancer import plan
from gateway_core.gateway.pipeline import OverLimit, Pipeline
from gateway_core.gateway.warming import Warmer
from gateway_core.jobs.fair_queue import FairQueue
from gateway_core.jobs.model import Job
from gateway_core.jobs.runner import Attempt, OnFinished, OnRetry, OnStarted, Runner, attempt_id
from gateway_core.jobs.settings import JobSettings
from gateway_core.metrics import QueueMetrics
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.providers.runtime import ProviderRuntime

log = logging.getLogger("corral.jobs")

RECHECK_S = 1.0
FILL_BATCH = 64  # jobs started in one go at most; the rest after the loop's other work
SYNC_HOLD_S = 2.0  # how long after synchronous traffic was last seen on a provider jobs still keep to their share
STOP_GRACE_S = 5.0  # after the drain timeout, how long cut-off attempts get to report being queued again


@dataclass(frozen=True, slots=True)
class Target:
    """What a job can run on: its model's providers (or only its pinned one), avoiding where it failed before."""

    model: str
    pinned: str | None = None
    avoid: frozenset[str] = frozenset()


class Scheduler:
    """Runs queued jobs on free capacity; the job service adds them and hears how they end (runner.py)."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        registry: ProviderRegistry,
        metrics: QueueMetrics,
        settings: JobSettings,
        on_started: OnStarted,
        on_finished: OnFinished,
        on_retry: OnRetry,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._pipeline = pipeline
        self._registry = registry
        self._metrics = metrics
        self._settings = settings
        self._time = clock.time
        self._monotonic = clock.monotonic
        self._runner = Runner(
            pipeline=pipeline,
            metrics=metrics,
            settings=settings,
            clock=clock,
            on_started=on_started,
            on_finished=on_finished,
            on_retry=on_retry,
            slot_taken=self._slot_taken,
        )
        self._queue: FairQueue[Job] = FairQueue()
        self._since: dict[str, float] = {}  # job id -> when it joined the queue (wall clock)
        self._avoid: dict[str, frozenset[str]] = {}  # job id -> the providers its failed attempts ran on
        self._running: dict[str, Attempt] = {}
        self._sync_seen: dict[str, float] = {}  # provider -> when synchronous traffic was last seen on it
        self._reserved: dict[str, int] = {}  # provider -> attempts started whose slot the pipeline has not taken yet
        self._parked: dict[str, asyncio.TimerHandle | None] = {}  # key id -> until its limit lifts (None: a slot)
        self._tasks: set[asyncio.Task[object]] = set()
        self._started = False
        self._fill_due = False  # a fill is scheduled
        self._recheck: asyncio.TimerHandle | None = None
        self._stopping = False
        self.warmer: Warmer | None = None  # models on demand: a cold model's deployment is loaded (state.py)

    # -- what the job service calls

    def add(self, job: Job) -> None:
        """A queued job joins its key's queue; one already queued or running here, or any while stopping, is not."""
        if self._stopping or job.id in self._queue or job.id in self._running:
            return
        self._enqueue(job, job.queued_at)

    def cancel(self, job_id: str) -> bool:
        """A queued job leaves the queue; a running one has its upstream request cancelled (freeing its slot)."""
        job = self._queue.remove(job_id)
        if job is not None:
            self._dequeued(job)
            self._avoid.pop(job_id, None)
            return True
        attempt = self._running.get(job_id)
        if attempt is not None:
            attempt.cancel()
            return True
        return False

    async def start(self) -> None:
        if not self._started:
            self._started = True
            self._registry.release_listeners.append(self._slot_released)
            self._fill_soon()

    async def stop(self, drain_timeout_s: float) -> None:
        """Start nothing more; let running attempts finish for up to `drain_timeout_s`, then cut them off (each is
        cancelled upstream and reported queued again). Queued jobs stay queued, on disk, for the next start."""
        self._stopping = True
        with contextlib.suppress(ValueError):
            self._registry.release_listeners.remove(self._slot_released)
        if self._recheck is not None:
            self._recheck.cancel()
        for timer in self._parked.values():
            if timer is not None:
                timer.cancel()
        self._parked.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, drain_timeout_s))
        if self._tasks:
            log.info("job queue: %d attempt(s) still running at the drain timeout; cut off", len(self._running))
            for attempt in list(self._running.values()):
                attempt.stop()
            await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_S)
        for task in list(self._tasks):  # only one the grace could not end (a report stuck on the disk)
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for job in list(self._queue.items()):
            self._queue.remove(job.id)
            self._dequeued(job)

    # -- what tests and the metrics read

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> dict[str, Attempt]:
        """The attempts running now, by job id (a copy)."""
        return dict(self._running)

    def jobs_on(self, provider: str) -> int:
        """Attempts of jobs holding one of the provider's slots now, or about to take one."""
        return self._holding(provider) + self._reserved.get(provider, 0)

    def _holding(self, provider: str) -> int:
        return sum(1 for attempt in self._running.values() if attempt.holds(provider))

    # -- queueing

    def _enqueue(self, job: Job, since: float) -> None:
        target = Target(job.model, job.pinned_provider, self._avoid.get(job.id, frozenset()))
        self._queue.push(job.key_id, target, job.priority, job.seq, job.id, job)
        self._since[job.id] = since
        self._metrics.queued(job.model, job.key_id, 1)
        self._fill_soon()

    def _dequeued(self, job: Job) -> float:
        self._metrics.queued(job.model, job.key_id, -1)
        return self._since.pop(job.id, self._time())

    # -- dispatching

    def _fill_soon(self) -> None:
        """Fill free slots right after the current callback: once, however many things ask before it runs."""
        if self._started and not self._stopping and not self._fill_due:
            self._fill_due = True
            asyncio.get_running_loop().call_soon(self._fill)

    def _fill(self) -> None:
        self._fill_due = False
        if self._stopping:
            return
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        for _ in range(FILL_BATCH):
            try:
                started = self._start_next()
            except Exception:  # a bug here must not end the queue for good
                log.exception("job queue: picking the next job failed")
                started = False
            if not started:
                break
        else:
            self._fill_soon()  # more may start, after the loop's other work
            return
        if self._queue:
            self._recheck = asyncio.get_running_loop().call_later(RECHECK_S, self._fill_soon)

    def _slot_released(self) -> None:
        """A slot was freed (the registry calls this in the releasing call): fill it, while jobs are queued; idle,
        it costs the hot path one test."""
        if not self._queue:
            return
        for key, timer in list(self._parked.items()):
            if timer is None:  # parked at its concurrency limit: a request of it may have ended
                del self._parked[key]
        self._fill_soon()

    def _start_next(self) -> bool:
        """Start (or settle) one job if one can start now; whether one did."""
        free: dict[Target, list[ProviderRuntime]] = {}
        doomed: dict[Target, GatewayError] = {}

        def ready(key: str, target: object) -> bool:
            assert isinstance(target, Target)
            if key in self._parked:
                return False
            if target not in free:
                free[target] = self._free_providers(target, doomed)
            return bool(free[target]) or target in doomed

        picked = self._queue.pop_next(ready)
        if picked is None:
            return False
        key, target, job = picked
        assert isinstance(target, Target)
        since = self._dequeued(job)
        refusal = doomed.get(target)
        if refusal is not None and not free[target]:
            self._settle(job, refusal_error(refusal))
            return True
        used = job.attempts - job.base_attempts
        if used >= self._settings.job_attempts:  # its last attempt was cut off by a crash or a stop
            self._settle(job, exhausted_error(used, self._settings.job_attempts))
            return True
        number = job.attempts + 1
        try:
            admitted = self._pipeline.admit_job(job.key_id, job.route, job.body, attempt_id(job.id, number))
        except GatewayError as error:
            self._settle(job, refusal_error(error))
            return True
        if isinstance(admitted, OverLimit):
            self._park(key, admitted)
            self._enqueue(job, since)
            return True
        order = plan(free[target])
        attempt = Attempt(job, number, admitted, order, self._monotonic())
        self._reserved[order[0].name] = self._reserved.get(order[0].name, 0) + 1
        self._running[job.id] = attempt
        self._metrics.attempt_started(job.model, self._time() - since)
        self._spawn(self._run(attempt), f"job:{job.id}")
        return True

    def _free_providers(self, target: Target, doomed: dict[Target, GatewayError]) -> list[ProviderRuntime]:
        """The providers the target's next attempt may start on now; a target that can never run is noted."""
        serving = self._registry.serving(target.model)
        if target.pinned is not None:
            pinned = self._registry.get(target.pinned)
            if pinned is None or (pinned.health == "ready" and target.model not in pinned.models):
                doomed[target] = GatewayError(
                    404,
                    f"provider '{target.pinned}' (the job's pinned provider) no longer "
                    f"{'exists' if pinned is None else f'serves model {target.model!r}'}; submit it again "
                    "without 'provider', or with another",
                    param="provider",
                    code="provider_not_found",
                )
                return []
            serving = [p for p in serving if p is pinned]
        elif not serving:
            # Doomed only when no provider lists it at all, disabled or drained ones included (they come back),
            # and none is still loading (it may list it yet).
            missing = self._registry.unknown_model(target.model)
            if missing.status == 404 and not any(target.model in p.models for p in self._registry):
                doomed[target] = missing
            return []
        routable = [p for p in serving if p.routable()]
        if not routable and self.warmer is not None and (cold := self.warmer.cold(serving)):
            self.warmer.warm_soon(cold, f"a queued job for '{target.model}' is waiting")
        if target.avoid:
            elsewhere = [p for p in routable if p.name not in target.avoid]
            routable = elsewhere or routable  # another provider of the model when there is one
        sync_waiting = self._pipeline.waiting_for_slot > 0
        return [p for p in routable if self._has_room(p, sync_waiting)]

    def _has_room(self, provider: ProviderRuntime, sync_waiting: bool) -> bool:
        name = provider.name
        holding = self._holding(name)
        now = time.monotonic()  # real time: the hold paces live traffic, like the pipeline's slot wait
        # A synchronous request in flight on a provider may be waiting in llama-server's own queue, which Corral
        # cannot see: so while synchronous traffic is on it (and SYNC_HOLD_S after), the share applies too.
        if sync_waiting or provider.in_flight > holding:
            self._sync_seen[name] = now
        slots = slots_of(provider)
        reserved = self._reserved.get(name, 0)
        if provider.in_flight + reserved >= slots:
            return False
        if now - self._sync_seen.get(name, -SYNC_HOLD_S) >= SYNC_HOLD_S:
            return True
        # Synchronous requests are waiting or running here: jobs hold at most their share of the slots.
        return holding + reserved < int(slots * self._settings.queue_share)

    def _park(self, key: str, over: OverLimit) -> None:
        """Skip the key until its limit lifts: at a freed slot (concurrency), or when its window allows."""
        if over.limit == "concurrency":
            self._parked[key] = None
            return
        loop = asyncio.get_running_loop()
        self._parked[key] = loop.call_later(over.retry_after_s, self._unpark, key)

    def _unpark(self, key: str) -> None:
        self._parked.pop(key, None)
        self._fill_soon()

    def _slot_taken(self, attempt: Attempt) -> None:
        if not attempt.slot_taken:
            attempt.slot_taken = True
            name = attempt.order[0].name
            self._reserved[name] -= 1
            if not self._reserved[name]:
                del self._reserved[name]

    # -- running

    async def _run(self, attempt: Attempt) -> None:
        job = attempt.job
        state: JobState = "failed"
        try:
            state = await self._runner.run(attempt)
        finally:
            self._slot_taken(attempt)
            self._running.pop(job.id, None)
            self._fill_soon()
        if state == "queued":
            if not attempt.stopped:
                self._avoid[job.id] = self._avoid.get(job.id, frozenset()) | {attempt.provider()}
            if not self._stopping and not attempt.cancelled:
                self._enqueue(job, self._time())
            return
        self._avoid.pop(job.id, None)
        self._metrics.job_finished(state, attempt.number - job.base_attempts)

    def _settle(self, job: Job, error: JobError) -> None:
        """Fail a job that will never run, without an attempt."""
        self._avoid.pop(job.id, None)

        async def fail() -> None:
            await self._runner.fail(job, error)
            self._metrics.job_finished("failed", job.attempts - job.base_attempts)

        self._spawn(fail(), f"job:{job.id}:fail")

    def _spawn(self, work: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("job queue: %s failed", task.get_name(), exc_info=task.exception())


def slots_of(provider: ProviderRuntime) -> int:
    """A provider's slots for jobs: llama-server's reported slots (within the configured max concurrency), else
    the max concurrency, else 1: a provider that never said is given one job at a time."""
    limit = provider.config.max_concurrency
    reported = provider.discovered_capacity
    if reported:
        return min(reported, limit) if limit is not None else reported
    return limit or 1


def refusal_error(error: GatewayError) -> JobError:
    body = error.body()["error"]
    return {"message": error.message, "type": str(body["type"]), "code": error.code}


def exhausted_error(used: int, limit: int) -> JobError:
    return {
        "message": f"the job made its {used} attempt{'s' if used != 1 else ''} (corral-core --job-attempts {limit}); "
        "the last was cut off as corral-core stopped or crashed",
        "type": "server_error",
        "code": "attempts_exhausted",
    }
