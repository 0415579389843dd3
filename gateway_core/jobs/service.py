"""The job service: what the queue API and the admin API call, and what the scheduler reports to.

It validates a submit exactly as the synchronous route validates a request (a job that could never run is
refused here, not failed later), writes each change through the store before it is answered or published, keeps
the jobs not yet final in memory (the scheduler's, and those `wait` watches), and hands each final state with a
reply_to to the callback service: marked `callback_due` in the same commit as the state, cleared once the
delivery is enqueued, re-enqueued at start if a crash fell between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import msgspec

from gateway_core.clock import Clock
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.jobs import (
    CALLBACK_TYPES,
    FINAL_STATES,
    JOB_STATES,
    CallbackType,
    JobCounts,
    JobError,
    JobRoute,
    JobState,
    JobUsage,
    JobView,
    QueueSubmit,
)
from gateway_core.contracts.request import encode_body, parse
from gateway_core.events import EventBus
from gateway_core.gateway.keys import ApiKey
from gateway_core.gateway.pipeline import routing_candidates
from gateway_core.jobs.model import Job, delivery_id, job_view, new_job_id
from gateway_core.jobs.store import JobStore
from gateway_core.providers.registry import ProviderRegistry

log = logging.getLogger("corral.jobs")

MAX_WAIT_S = 60.0
CANCELLED_BY_CLIENT: JobError = {
    "message": "the job was cancelled through DELETE /v1/queue/{id}",
    "type": "cancelled",
    "code": "cancelled",
}
CANCELLED_BY_OPERATOR: JobError = {
    "message": "the job was cancelled by an operator",
    "type": "cancelled",
    "code": "cancelled",
}


class Scheduling(Protocol):
    """The scheduler as the service drives it (gateway_core/jobs/scheduler.py)."""

    def add(self, job: Job) -> None: ...

    def cancel(self, job_id: str) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self, drain_timeout_s: float) -> None: ...


class CallbackPort(Protocol):
    """The callback service as the job service uses it (gateway_core/callbacks/service.py)."""

    async def check_reply_to(self, url: str) -> None: ...

    async def enqueue(self, delivery_id: str, key_id: str, url: str, type: CallbackType, data: JobView) -> None: ...


class _Counts:
    def __init__(self, counts: JobCounts) -> None:
        self._by_state: dict[str, int] = {state: int(counts[state]) for state in JOB_STATES}

    def moved(self, old: JobState | None, new: JobState) -> None:
        if old is not None:
            self._by_state[old] -= 1
        self._by_state[new] += 1

    def view(self) -> JobCounts:
        c = self._by_state
        return JobCounts(
            queued=c["queued"],
            running=c["running"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            cancelled=c["cancelled"],
        )


class JobService:
    def __init__(
        self,
        store: JobStore,
        *,
        registry: ProviderRegistry,
        events: EventBus,
        clock: Clock,
        callbacks: CallbackPort | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._events = events
        self._clock = clock
        self._callbacks = callbacks
        self._scheduler: Scheduling | None = None
        self._live: dict[str, Job] = {}  # the jobs not final: queued or running
        self._changed: dict[str, asyncio.Event] = {}  # set (and replaced) at each change of a watched job
        self._counts = _Counts(JobCounts(queued=0, running=0, succeeded=0, failed=0, cancelled=0))
        self._accepting = False
        self._drained = False
        self._submit_decoder = msgspec.json.Decoder(QueueSubmit)

    def attach(self, scheduler: Scheduling) -> None:
        self._scheduler = scheduler

    # -- lifecycle

    async def start(self) -> None:
        """Open the store, queue its jobs again (those running at a crash too), resume callbacks due, take submits."""
        jobs = await self._store.open()
        self._counts = _Counts(await self._store.counts())
        for job in jobs:
            self._live[job.id] = job
            if self._scheduler is not None:
                self._scheduler.add(job)
        due = await self._store.callbacks_due()
        await asyncio.gather(*(self._hand_callback(job) for job in due))  # together: their commits are shared
        if self._scheduler is not None:
            await self._scheduler.start()
        self._accepting = True
        if jobs or due:
            log.info("job queue: %d job(s) queued from disk, %d callback(s) handed over again", len(jobs), len(due))

    async def drain(self, drain_timeout_s: float) -> None:
        """SIGTERM: take no new jobs, let running ones finish up to the timeout, leave the rest queued on disk.
        Reads (polls, waits, lists) keep being answered until close(); a wait on a job that will not run before
        the next start answers now, so it does not hold the server's own drain."""
        self._accepting = False
        if self._drained:
            return
        self._drained = True
        self._wake_waiters(lambda job: job is None or job.state == "queued")
        if self._scheduler is not None:
            await self._scheduler.stop(drain_timeout_s)
        self._wake_waiters(lambda job: True)  # what was still running was cut off and queued again

    def _wake_waiters(self, which: Callable[[Job | None], bool]) -> None:
        for job_id in [job_id for job_id in self._changed if which(self._live.get(job_id))]:
            self._changed.pop(job_id).set()

    async def close(self) -> None:
        await self.drain(0.0)
        await self._store.close()

    # -- the public API's calls

    async def submit(self, key: ApiKey, route: JobRoute, raw: bytes) -> tuple[Job, bool]:
        """A new job (job, True), or the key's existing job of the same ref_id (job, False)."""
        if not self._accepting:
            raise GatewayError(
                503,
                "corral-core is stopping and takes no new jobs; submit again once it is back",
                code="queue_stopping",
                headers={"retry-after": "5"},
            )
        try:
            submit = self._submit_decoder.decode(raw)
        except msgspec.DecodeError as error:
            raise GatewayError(
                400,
                f'queue body is not valid: {error}; send {{"request": {{...the OpenAI body...}}, "ref_id"?, '
                '"reply_to"?, "tag"?, "provider"?, "priority"?}',
                code="invalid_queue_body",
            ) from error
        if submit.ref_id is not None:
            existing = await self._store.find_ref(key.id, submit.ref_id)
            if existing is not None:
                return self._current(existing), False
        body = encode_body(submit.request)
        await self._validate(key, route, body, submit)
        now = self._clock.time()
        job = Job(
            id=new_job_id(now),
            key_id=key.id,
            route=route,
            model=str(submit.request["model"]),
            body=body,
            seq=0,
            created_at=now,
            queued_at=now,
            ref_id=submit.ref_id,
            tag=submit.tag,
            priority=submit.priority,
            reply_to=submit.reply_to,
            pinned_provider=submit.provider,
        )
        stored, added = await self._store.add(job)
        if not added:
            return self._current(stored), False
        self._live[stored.id] = stored
        self._counts.moved(None, "queued")
        if self._scheduler is not None:
            self._scheduler.add(stored)
        self._changed_now(stored)
        return stored, True

    async def _validate(self, key: ApiKey, route: JobRoute, body: bytes, submit: QueueSubmit) -> None:
        parsed = parse(route, body)
        if parsed.stream:
            raise GatewayError(
                400,
                'a queued request is never streamed: leave out "stream" or set it to false, and read the result '
                "from GET /v1/queue/{id} (or its callback)",
                param="request.stream",
                code="stream_not_queued",
            )
        candidates = routing_candidates(key, parsed, self._registry)  # exactly the synchronous route's checks
        if submit.provider is not None:
            provider = self._registry.get(submit.provider)
            if provider is None:
                raise GatewayError(
                    404,
                    f"no provider named '{submit.provider}'; leave out \"provider\" to run on any provider of "
                    "the model",
                    param="provider",
                    code="provider_not_found",
                )
            if provider not in candidates:
                names = ", ".join(p.name for p in candidates)
                raise GatewayError(
                    400,
                    f"provider '{submit.provider}' does not serve model '{parsed.model}' (served by {names}); "
                    'pin one of those, or leave out "provider"',
                    param="provider",
                    code="provider_not_serving_model",
                )
        if submit.reply_to is not None:
            if self._callbacks is None:
                raise GatewayError(
                    400, "this corral-core sends no callbacks; leave out reply_to and poll", param="reply_to"
                )
            if key.webhook_secret is None:
                raise GatewayError(
                    400,
                    f"API key '{key.name}' has no webhook secret to sign callbacks with (it predates them): an "
                    f"operator can give it one with `corral keys rotate-webhook-secret {key.name}`; or leave out "
                    "reply_to and poll",
                    param="reply_to",
                    code="no_webhook_secret",
                )
            await self._callbacks.check_reply_to(submit.reply_to)

    def _current(self, job: Job) -> Job:
        """The freshest copy: the live one in memory if the job is not final."""
        return self._live.get(job.id, job)

    async def get(self, job_id: str, key_id: str | None) -> Job:
        """The job; 404 if none, or if it is another key's (`key_id` None: the admin sees every job)."""
        job = self._live.get(job_id) or await self._store.get(job_id)
        if job is None or (key_id is not None and job.key_id != key_id):
            raise GatewayError(
                404,
                f"no job '{job_id}' for this API key; GET /v1/queue lists this key's jobs",
                param="id",
                code="job_not_found",
            )
        return job

    async def find_ref(self, key_id: str, ref_id: str) -> Job:
        job = await self._store.find_ref(key_id, ref_id)
        if job is None:
            raise GatewayError(
                404, f"this API key has no job with ref_id '{ref_id}'", param="ref_id", code="job_not_found"
            )
        return self._current(job)

    async def list(
        self, key_id: str | None, tag: str | None, state: JobState | None, limit: int, cursor: str | None
    ) -> tuple[list[Job], str | None]:
        jobs, next_cursor = await self._store.list(key_id, tag, state, limit, cursor)
        return [self._current(job) for job in jobs], next_cursor

    async def wait(self, job_id: str, key_id: str | None, timeout_s: float) -> Job:
        """The job once final, or as it is after `timeout_s` (at most 60 s). Wakes on the job's change."""
        job = await self.get(job_id, key_id)
        loop = asyncio.get_running_loop()  # real time: the wait paces a client's connection, not a measurement
        deadline = loop.time() + min(max(timeout_s, 0.0), MAX_WAIT_S)
        while job.state not in FINAL_STATES:
            left = deadline - loop.time()
            if left <= 0 or (self._drained and job.state == "queued"):
                break
            changed = self._changed.setdefault(job_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
            job = await self.get(job_id, key_id)
        return job

    async def cancel(self, job_id: str, key_id: str | None) -> Job:
        """Cancel a queued or running job (a running one's upstream request is cancelled); a final job as it is."""
        job = await self.get(job_id, key_id)
        if self._live.pop(job_id, None) is None:
            # Final, or its final state is being committed right now (another cancel, its answer): as it ends.
            return job if job.state in FINAL_STATES else await self.wait(job_id, key_id, MAX_WAIT_S)
        if self._scheduler is not None:
            self._scheduler.cancel(job_id)  # any report about it from here on is ignored: it is no longer live
        error = CANCELLED_BY_OPERATOR if key_id is None else CANCELLED_BY_CLIENT
        return await self._finish(job, "cancelled", None, None, error)

    async def retry(self, job_id: str) -> Job:
        """An operator's retry: a failed or cancelled job queued again, with a fresh attempt budget and timeout."""
        job = await self.get(job_id, None)
        if job.state not in ("failed", "cancelled"):
            raise GatewayError(
                409,
                f"job '{job_id}' is {job.state}: only a failed or cancelled job can be retried",
                param="id",
                code="job_not_retryable",
            )
        queued = await self._store.retry(job_id, self._clock.time())
        assert queued is not None
        if job_id in self._live:  # a second retry of the same job, answered while the first was committing
            return self._live[job_id]
        self._live[job_id] = queued
        self._counts.moved(job.state, "queued")
        if self._scheduler is not None:
            self._scheduler.add(queued)
        self._changed_now(queued)
        return queued

    def counts(self) -> JobCounts:
        return self._counts.view()

    # -- what the scheduler reports

    async def on_started(self, job: Job, attempt: int, provider: str) -> None:
        live = self._live.get(job.id)
        if live is None:
            return  # cancelled meanwhile
        old = live.state
        live.state, live.attempts, live.provider = "running", attempt, provider
        live.started_at = self._clock.time()
        stored = await self._store.started(job.id, attempt, provider, live.started_at)
        if stored is not None and self._live.get(job.id) is live:
            self._counts.moved(old, "running")
            self._changed_now(live)

    async def on_retry(self, job: Job, error: JobError | None) -> None:
        live = self._live.get(job.id)
        if live is None:
            return
        old = live.state
        live.state, live.error = "queued", error
        await self._store.requeue(job.id, error)
        if self._live.get(job.id) is live:
            self._counts.moved(old, "queued")
            self._changed_now(live)

    async def on_finished(
        self, job: Job, state: JobState, usage: JobUsage | None, result: bytes | None, error: JobError | None
    ) -> None:
        live = self._live.pop(job.id, None)
        if live is None:
            return  # cancelled meanwhile: its cancel wrote the final state
        await self._finish(live, state, usage, result, error)

    async def _finish(
        self, job: Job, state: JobState, usage: JobUsage | None, result: bytes | None, error: JobError | None
    ) -> Job:
        due = job.reply_to is not None
        final = await self._store.finished(job.id, state, self._clock.time(), usage, result, error, due)
        assert final is not None
        self._counts.moved(job.state, state)
        self._changed_now(final)
        if due:
            await self._hand_callback(final)
        return final

    async def _hand_callback(self, job: Job) -> None:
        if self._callbacks is None or job.reply_to is None or job.state not in FINAL_STATES:
            return
        try:
            await self._callbacks.enqueue(
                delivery_id(job), job.key_id, job.reply_to, CALLBACK_TYPES[job.state], job_view(job)
            )
            await self._store.callback_enqueued(job.id)
        except Exception:
            # Still callback_due on disk: the next start hands it over again.
            log.exception("job %s: its callback could not be enqueued; it will be at the next start", job.id)

    def _changed_now(self, job: Job) -> None:
        self._events.publish("job", job_view(job, with_result=False))
        changed = self._changed.pop(job.id, None)
        if changed is not None:
            changed.set()
