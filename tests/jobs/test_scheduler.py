"""Scheduling queued jobs on a real llama-server: free capacity only, fair across keys, synchronous traffic first.

The scheduler runs in-process on the gateway's own pipeline and registry, reporting to a recorder in place of
the job service (which stores and publishes what it hears; tests/jobs/test_queue_api*.py cover it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from gateway_core.contracts.jobs import JobError, JobState, JobUsage
from gateway_core.jobs.model import Job, new_job_id
from gateway_core.jobs.scheduler import Scheduler
from gateway_core.jobs.settings import JobSettings
from tests.fakes.fault_server import FaultServer
from tests.testbed.waiting import wait_for_async

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]
_seq = itertools.count(1)


@dataclass
class Ended:
    state: JobState
    usage: JobUsage | None
    result: bytes | None
    error: JobError | None


@dataclass
class Reports:
    """What the job service would hear, in order; it updates the job as the service does (in place)."""

    scheduler: Scheduler | None = None
    started: list[tuple[str, int, str]] = field(default_factory=list)
    retries: list[tuple[str, JobError | None]] = field(default_factory=list)
    ended: dict[str, Ended] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # job ids in the order they reached a final state
    # At each start: synchronous requests waiting, and the jobs on the provider (this one included).
    at_start: list[tuple[int, int]] = field(default_factory=list)
    sync_waiting: Any = None  # () -> int, set by the test that reads it

    async def on_started(self, job: Job, attempt: int, provider: str) -> None:
        job.state, job.attempts, job.provider = "running", attempt, provider
        self.started.append((job.id, attempt, provider))
        if self.scheduler is not None and self.sync_waiting is not None:
            self.at_start.append((self.sync_waiting(), self.scheduler.jobs_on(provider)))

    async def on_retry(self, job: Job, error: JobError | None) -> None:
        job.state, job.error = "queued", error
        self.retries.append((job.id, error))

    async def on_finished(
        self, job: Job, state: JobState, usage: JobUsage | None, result: bytes | None, error: JobError | None
    ) -> None:
        job.state = state
        self.ended[job.id] = Ended(state, usage, result, error)
        self.order.append(job.id)


@contextlib.asynccontextmanager
async def scheduling(gateway, **settings: Any) -> AsyncIterator[tuple[Scheduler, Reports]]:
    reports = Reports()
    scheduler = Scheduler(
        pipeline=gateway.state.pipeline,
        registry=gateway.state.registry,
        metrics=gateway.state.metrics.queue,
        settings=JobSettings(**settings),
        on_started=reports.on_started,
        on_finished=reports.on_finished,
        on_retry=reports.on_retry,
        clock=gateway.clock,
    )
    reports.scheduler = scheduler
    reports.sync_waiting = lambda: gateway.state.pipeline.waiting_for_slot
    await scheduler.start()
    try:
        yield scheduler, reports
    finally:
        await scheduler.stop(0.0)


def make_job(key_id: str, *, max_tokens: int = 4, priority: int = 0, pinned: str | None = None, **body: Any) -> Job:
    now = time.time()
    request = {"model": "tiny", "messages": PROMPT, "max_tokens": max_tokens, **body}
    return Job(
        id=new_job_id(now),
        key_id=key_id,
        route="chat",
        model="tiny",
        body=orjson.dumps(request),
        seq=next(_seq),
        created_at=now,
        queued_at=now,
        priority=priority,
        pinned_provider=pinned,
    )


async def key_id_of(gateway, name: str, **limits: Any) -> str:
    return (await gateway.create_key(name, **limits)).split("-")[2]


def slots_busy(server) -> int:
    return sum(1 for slot in httpx.get(server.base_url + "/slots").json() if slot["is_processing"])


async def all_ended(reports: Reports, jobs: list[Job], timeout_s: float = 60.0) -> None:
    await wait_for_async(
        lambda: all(job.id in reports.ended for job in jobs), f"{len(jobs)} job(s) to end", timeout_s=timeout_s
    )


@pytest.mark.asyncio
async def test_a_queued_job_runs_on_a_free_slot_and_reports_the_answer_and_usage(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=2)
    await gateway.add_provider("llama", server.base_url)
    key = await key_id_of(gateway, "app")
    job = make_job(key)

    async with scheduling(gateway) as (scheduler, reports):
        scheduler.add(job)
        await all_ended(reports, [job])

    ended = reports.ended[job.id]
    assert reports.started == [(job.id, 1, "llama")]
    assert ended.state == "succeeded", ended.error
    answer = orjson.loads(ended.result)
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "tiny"
    assert ended.usage == {
        "prompt_tokens": answer["usage"]["prompt_tokens"],
        "completion_tokens": answer["usage"]["completion_tokens"],
        "total_tokens": answer["usage"]["total_tokens"],
    }
    metrics = gateway.state.metrics.registry
    assert metrics.get_sample_value("corral_queue_jobs_finished_total", {"state": "succeeded"}) == 1
    assert metrics.get_sample_value("corral_queue_depth", {"model": "tiny", "key": key}) == 0
    assert metrics.get_sample_value("corral_queue_wait_seconds_count", {"model": "tiny"}) == 1
    assert metrics.get_sample_value("corral_queue_run_seconds_count", {"model": "tiny"}) == 1
    assert metrics.get_sample_value("corral_queue_job_attempts_sum") == 1
    assert metrics.get_sample_value(
        "corral_requests_total", {"model": "tiny", "provider": "llama", "status": "200"}
    ) == 1  # fmt: skip


@pytest.mark.asyncio
async def test_with_two_keys_the_five_jobs_of_one_finish_before_the_five_hundred_of_the_other(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=2)
    await gateway.add_provider("llama", server.base_url)
    busy, light = await key_id_of(gateway, "busy"), await key_id_of(gateway, "light")
    backlog = [make_job(busy) for _ in range(500)]
    few = [make_job(light) for _ in range(5)]

    async with scheduling(gateway) as (scheduler, reports):
        for job in backlog:
            scheduler.add(job)
        for job in few:  # submitted after the whole backlog
            scheduler.add(job)
        await all_ended(reports, backlog + few, timeout_s=120)

    assert all(ended.state == "succeeded" for ended in reports.ended.values())
    light_done = max(reports.order.index(job.id) for job in few)
    assert light_done < 20, f"the light key's last job ended {light_done + 1}th of 505"
    assert reports.order.index(backlog[-1].id) > light_done


@pytest.mark.asyncio
async def test_within_a_key_jobs_start_by_priority_then_in_order(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=1)
    await gateway.add_provider("llama", server.base_url)
    key = await key_id_of(gateway, "app")
    low, high, normal, high_later = (
        make_job(key, priority=-1),
        make_job(key, priority=5),
        make_job(key),
        make_job(key, priority=5),
    )

    async with scheduling(gateway) as (scheduler, reports):
        for job in (low, high, normal, high_later):
            scheduler.add(job)
        await all_ended(reports, [low, high, normal, high_later])

    assert [job_id for job_id, _, _ in reports.started] == [high.id, high_later.id, normal.id, low.id]


@pytest.mark.asyncio
async def test_while_synchronous_requests_wait_jobs_hold_at_most_half_of_each_providers_slots(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=4, extra_args=("--context-shift",))
    with FaultServer(model="busy") as single:
        single.set_mode("slow", delay_s=3.0)
        await gateway.add_provider("llama", server.base_url)
        await gateway.add_provider("single", single.base_url, max_concurrency=1, models={"busy": "busy"})
        key_token = await gateway.create_key("app")
        key = key_token.split("-")[2]
        jobs = [make_job(key, max_tokens=3000, ignore_eos=True) for _ in range(24)]
        pipeline = gateway.state.pipeline

        async with scheduling(gateway) as (scheduler, reports):
            # One synchronous request holds the single slot of "single"; a second one waits for it.
            holding = asyncio.create_task(gateway.chat(key_token, model="busy"))
            await wait_for_async(lambda: single.in_flight == 1, "the first synchronous request to hold the slot")
            waiting = asyncio.create_task(gateway.chat(key_token, model="busy"))
            await wait_for_async(lambda: pipeline.waiting_for_slot == 1, "the second one to wait for a slot")
            for job in jobs:
                scheduler.add(job)
            samples: list[tuple[int, int, int]] = []

            def sample() -> bool:
                if pipeline.waiting_for_slot:
                    samples.append((scheduler.jobs_on("llama"), gateway.state.registry.require("llama").in_flight,
                                    slots_busy(server)))  # fmt: skip
                return pipeline.waiting_for_slot == 0

            await wait_for_async(sample, "the synchronous request to stop waiting", timeout_s=15)
            await holding, await waiting
            left = len(jobs) - len(reports.ended)
            await wait_for_async(lambda: scheduler.jobs_on("llama") == 4, "jobs to take all 4 slots once none wait")
            await all_ended(reports, jobs)

    assert left >= 4, f"only {left} job(s) were left when the synchronous request stopped waiting"
    assert samples, "no sample was taken while the synchronous request waited"
    assert max(jobs_on for jobs_on, _, _ in samples) == 2
    assert max(in_flight for _, in_flight, _ in samples) <= 2
    assert max(busy for _, _, busy in samples) <= 2  # as llama-server itself reports its slots
    assert all(on <= 2 for waiting_now, on in reports.at_start if waiting_now)


# A synchronous request as apps send them: a prompt of some length (here 400 byte tokens), a short answer.
SYNC_PROMPT = [{"role": "user", "content": "Summarise this: " + "lorem ipsum " * 32}]


async def sync_latencies(gateway, key: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        # cache_prompt off: whether the prompt is still cached depends on which slot a job left it, not on scheduling
        response = await gateway.chat(key, messages=SYNC_PROMPT, max_tokens=16, ignore_eos=True, cache_prompt=False)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies


@pytest.mark.asyncio
async def test_synchronous_requests_keep_their_median_latency_within_twice_idle_while_200_jobs_queue(
    gateway, llama_servers
):
    (server,) = llama_servers(1, parallel=2)
    await gateway.add_provider("llama", server.base_url)
    token = await gateway.create_key("app")
    key = token.split("-")[2]
    idle: list[float] = []
    busy: list[float] = []
    queued_while_measured: list[int] = []

    async with scheduling(gateway) as (scheduler, reports):
        await sync_latencies(gateway, token, 5)  # warm: connections and llama-server's caches
        for _ in range(2):  # idle and busy rounds in turn, so the machine's drift weighs on both alike
            idle += await sync_latencies(gateway, token, 20)
            jobs = [make_job(key, max_tokens=64, ignore_eos=True) for _ in range(200)]
            for job in jobs:
                scheduler.add(job)
            await wait_for_async(lambda: scheduler.jobs_on("llama") == 2, "the jobs to fill the slots")
            busy += await sync_latencies(gateway, token, 20)
            queued_while_measured.append(scheduler.queued)
            await all_ended(reports, jobs, timeout_s=120)

    assert min(queued_while_measured) > 0, "the queue emptied before the synchronous requests were measured"
    idle_p50, busy_p50 = statistics.median(idle), statistics.median(busy)
    assert busy_p50 <= 2 * idle_p50, f"p50 {busy_p50 * 1000:.1f} ms with jobs queued, {idle_p50 * 1000:.1f} ms idle"
    assert all(ended.state == "succeeded" for ended in reports.ended.values())


@pytest.mark.asyncio
async def test_a_job_over_its_keys_concurrency_limit_waits_then_succeeds(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=4, extra_args=("--context-shift",))
    await gateway.add_provider("llama", server.base_url)
    token = await gateway.create_key("app", max_concurrency=1)
    key = token.split("-")[2]
    jobs = [make_job(key, max_tokens=200, ignore_eos=True) for _ in range(4)]
    most_at_once = 0

    async with scheduling(gateway) as (scheduler, reports):
        for job in jobs:
            scheduler.add(job)

        def watch() -> bool:
            nonlocal most_at_once
            most_at_once = max(most_at_once, len(scheduler.running))
            return all(job.id in reports.ended for job in jobs)

        await wait_for_async(watch, "the four jobs to end", timeout_s=60, interval_s=0.005)

    assert [reports.ended[job.id].state for job in jobs] == ["succeeded"] * 4
    assert most_at_once == 1
    assert reports.retries == []  # waiting is not a failed attempt
    assert [attempt for _, attempt, _ in reports.started] == [1, 1, 1, 1]


@pytest.mark.asyncio
async def test_every_slot_freed_while_jobs_are_queued_is_taken_again_before_the_event_loops_next_turn(
    gateway, llama_servers
):
    (server,) = llama_servers(1, parallel=4)
    await gateway.add_provider("llama", server.base_url)
    provider = gateway.state.registry.require("llama")
    key = await key_id_of(gateway, "app")
    jobs = [make_job(key, max_tokens=8) for _ in range(80)]
    refilled: list[tuple[int, int]] = []  # at each release while jobs were queued: (jobs on it, its slots)

    async with scheduling(gateway) as (scheduler, reports):
        releases = [0]

        def look_after_the_fill() -> None:
            # The scheduler's listener came first, so its fill is queued before this look: both run in the turn
            # after the release. Left out: a look after another release (two attempts ending together: its fill
            # has not run yet), and one whose fill took the last queued job (a slot may then rightly stay free).
            releases[0] += 1
            if scheduler.queued:
                seen = releases[0]

                def look() -> None:
                    if releases[0] == seen and scheduler.queued:
                        refilled.append((scheduler.jobs_on("llama"), provider.capacity))

                loop.call_soon(look)

        loop = asyncio.get_running_loop()
        gateway.state.registry.release_listeners.append(look_after_the_fill)
        for job in jobs:
            scheduler.add(job)
        await all_ended(reports, jobs)
        gateway.state.registry.release_listeners.remove(look_after_the_fill)

    assert all(ended.state == "succeeded" for ended in reports.ended.values())
    assert len(refilled) >= 10, "enough of the 80 jobs' releases were looked at alone, with jobs still queued"
    assert [(held, slots) for held, slots in refilled if not held == slots == 4] == []
