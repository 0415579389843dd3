"""Running a job's attempts: cancel frees the llama-server slot, failed attempts go elsewhere, limits on attempts
and time, a stop that cuts attempts off leaves them queued, and each attempt is an archived request of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fakes.fault_server import FaultServer
from tests.jobs.test_scheduler import all_ended, key_id_of, make_job, scheduling, slots_busy
from tests.testbed.waiting import wait_for_async

pytestmark = pytest.mark.llama_server

# Context shift lets the tiny model generate past its context, so a generation lasts as long as a test needs.
LONG_RUNNING = ("--context-shift",)


async def archived(gateway: Any, request_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def present() -> bool:
        response = await gateway.admin.get(f"/history/{request_id}")
        if response.status_code == 200:
            found.update(response.json())
        return bool(found)

    await wait_for_async(present, f"request {request_id} in the archive")
    return found


@pytest.mark.asyncio
async def test_cancelling_a_running_job_cancels_its_upstream_request_and_frees_the_llama_server_slot(
    gateway, llama_servers
):
    (server,) = llama_servers(1, parallel=2, extra_args=LONG_RUNNING)
    await gateway.add_provider("llama", server.base_url)
    job = make_job(await key_id_of(gateway, "app"), max_tokens=1_000_000, ignore_eos=True)

    async with scheduling(gateway) as (scheduler, reports):
        scheduler.add(job)
        await wait_for_async(lambda: slots_busy(server) == 1, "llama-server to be generating the job")

        assert scheduler.cancel(job.id) is True

        await wait_for_async(lambda: slots_busy(server) == 0, "llama-server's slot to be free")
        await all_ended(reports, [job])
        assert scheduler.cancel(job.id) is False  # no longer held

    assert reports.ended[job.id].state == "cancelled"
    assert len(gateway.state.live) == 0
    assert gateway.state.registry.require("llama").in_flight == 0
    row = await archived(gateway, job.id)
    assert (row["source"], row["status"], row["error_code"]) == ("queue", 499, "cancelled")


@pytest.mark.asyncio
async def test_a_cancelled_queued_job_never_starts(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=1, extra_args=LONG_RUNNING)
    await gateway.add_provider("llama", server.base_url)
    key = await key_id_of(gateway, "app")
    running, queued = make_job(key, max_tokens=1_000_000, ignore_eos=True), make_job(key)

    async with scheduling(gateway) as (scheduler, reports):
        scheduler.add(running)
        scheduler.add(queued)
        await wait_for_async(lambda: running.id in scheduler.running, "the first job to run")

        assert scheduler.cancel(queued.id) is True
        assert scheduler.queued == 0
        scheduler.cancel(running.id)
        await all_ended(reports, [running])

    assert [job_id for job_id, _, _ in reports.started] == [running.id]
    assert queued.id not in reports.ended  # the job service records the cancel of a queued job itself


@pytest.mark.asyncio
async def test_a_failed_attempt_runs_again_on_another_provider_of_the_model(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=1)
    with FaultServer() as flaky:
        flaky.set_mode("status", status=500, message="out of memory")
        await gateway.add_provider("flaky", flaky.base_url, priority=10)
        await gateway.add_provider("llama", server.base_url)
        token = await gateway.create_key("app")
        job = make_job(token.split("-")[2])
        # llama-server's one slot is taken by a synchronous request, so the first attempt can only go to "flaky".
        llama = gateway.state.registry.require("llama")
        held = gateway.state.registry.occupy(llama)

        async with scheduling(gateway, queue_share=1.0) as (scheduler, reports):
            scheduler.add(job)
            await wait_for_async(lambda: reports.retries, "the first attempt to fail")
            assert job.id in scheduler.running or scheduler.queued == 1
            held.release()
            await all_ended(reports, [job])

    assert reports.started == [(job.id, 1, "flaky"), (job.id, 2, "llama")]
    ((_, error),) = reports.retries
    assert error is not None
    assert "flaky" in error["message"]
    assert "HTTP 500" in error["message"]
    assert reports.ended[job.id].state == "succeeded"
    first, second = await archived(gateway, job.id), await archived(gateway, f"{job.id}.2")
    assert (first["source"], first["provider"], first["status"]) == ("queue", "flaky", 502)
    assert (second["source"], second["provider"], second["status"]) == ("queue", "llama", 200)


@pytest.mark.asyncio
async def test_after_its_last_attempt_fails_the_job_fails_with_the_reason(gateway):
    with FaultServer() as broken:
        broken.set_mode("status", status=503, message="overloaded")
        await gateway.add_provider("broken", broken.base_url)
        job = make_job(await key_id_of(gateway, "app"))

        async with scheduling(gateway, job_attempts=2) as (scheduler, reports):
            scheduler.add(job)
            await all_ended(reports, [job])

    ended = reports.ended[job.id]
    assert [attempt for _, attempt, _ in reports.started] == [1, 2]
    assert len(reports.retries) == 1
    assert ended.state == "failed"
    assert ended.error is not None
    assert ended.error["message"].startswith("failed after 2 attempts (corral-core --job-attempts 2); the last: ")
    assert "broken" in ended.error["message"]
    assert ended.error["code"] == "upstream_error"
    metrics = gateway.state.metrics.registry
    assert metrics.get_sample_value("corral_queue_jobs_finished_total", {"state": "failed"}) == 1
    assert metrics.get_sample_value("corral_queue_job_attempts_sum") == 2


@pytest.mark.asyncio
async def test_a_client_error_fails_the_job_at_once_without_another_attempt(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("status", status=400, message="the prompt is longer than the context")
        await gateway.add_provider("local", upstream.base_url)
        job = make_job(await key_id_of(gateway, "app"))

        async with scheduling(gateway) as (scheduler, reports):
            scheduler.add(job)
            await all_ended(reports, [job])

    ended = reports.ended[job.id]
    assert ended.state == "failed"
    assert reports.retries == []
    assert ended.error is not None
    assert "longer than the context" in ended.error["message"]


@pytest.mark.asyncio
async def test_an_attempt_past_the_job_timeout_is_cancelled_upstream_and_the_job_fails(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("hang")
        await gateway.add_provider("local", upstream.base_url)
        job = make_job(await key_id_of(gateway, "app"))

        async with scheduling(gateway, job_timeout_s=0.3) as (scheduler, reports):
            scheduler.add(job)
            await all_ended(reports, [job])
            await wait_for_async(lambda: upstream.disconnects == 1, "the upstream request to be closed")

    ended = reports.ended[job.id]
    assert ended.state == "failed"
    assert ended.error is not None
    assert ended.error["code"] == "job_timeout"
    assert "0.3 s" in ended.error["message"]
    assert gateway.state.registry.require("local").in_flight == 0


@pytest.mark.asyncio
async def test_stop_lets_running_attempts_finish_within_the_drain_timeout(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("slow", delay_s=0.3)
        await gateway.add_provider("local", upstream.base_url)
        job = make_job(await key_id_of(gateway, "app"))

        async with scheduling(gateway) as (scheduler, reports):
            scheduler.add(job)
            await wait_for_async(lambda: upstream.in_flight == 1, "the attempt to be upstream")
            await scheduler.stop(10.0)

    assert reports.ended[job.id].state == "succeeded"


@pytest.mark.asyncio
async def test_stop_cuts_off_attempts_past_the_drain_timeout_and_leaves_them_and_the_queue_queued(gateway):
    with FaultServer() as upstream:
        upstream.set_mode("hang")
        await gateway.add_provider("local", upstream.base_url, max_concurrency=1)
        key = await key_id_of(gateway, "app")
        running, waiting = make_job(key), make_job(key)

        async with scheduling(gateway) as (scheduler, reports):
            scheduler.add(running)
            scheduler.add(waiting)
            await wait_for_async(lambda: upstream.in_flight == 1, "the first attempt to be upstream")
            await asyncio.wait_for(scheduler.stop(0.2), 10)
            scheduler.add(make_job(key))  # ignored once stopping: it stays queued on disk

            assert scheduler.queued == 0
            assert scheduler.running == {}
            await wait_for_async(lambda: upstream.disconnects == 1, "the cut-off request to be closed upstream")

    ((job_id, error),) = reports.retries
    assert job_id == running.id
    assert error is not None
    assert error["code"] == "shutdown"
    assert reports.ended == {}
    assert gateway.state.registry.require("local").in_flight == 0


@pytest.mark.asyncio
async def test_a_job_pinned_to_a_provider_that_was_removed_fails_with_the_reason(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=1)
    await gateway.add_provider("llama", server.base_url)
    job = make_job(await key_id_of(gateway, "app"), pinned="gone")

    async with scheduling(gateway) as (scheduler, reports):
        scheduler.add(job)
        await all_ended(reports, [job])

    ended = reports.ended[job.id]
    assert ended.state == "failed"
    assert reports.started == []
    assert ended.error is not None
    assert ended.error["code"] == "provider_not_found"
    assert "'gone'" in ended.error["message"]


@pytest.mark.asyncio
async def test_a_job_pinned_to_a_provider_runs_only_there(gateway, llama_servers):
    first, second = llama_servers(2, parallel=2)
    await gateway.add_provider("one", first.base_url)
    await gateway.add_provider("two", second.base_url)
    key = await key_id_of(gateway, "app")
    jobs = [make_job(key, pinned="two") for _ in range(6)]

    async with scheduling(gateway) as (scheduler, reports):
        for job in jobs:
            scheduler.add(job)
        await all_ended(reports, jobs)

    assert {provider for _, _, provider in reports.started} == {"two"}
    assert all(reports.ended[job.id].state == "succeeded" for job in jobs)


@pytest.mark.asyncio
async def test_a_job_for_a_disabled_provider_waits_and_runs_once_it_is_enabled_again(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=1)
    await gateway.add_provider("llama", server.base_url)
    assert (await gateway.admin.patch("/providers/llama", json={"enabled": False})).status_code == 200
    job = make_job(await key_id_of(gateway, "app"))

    async with scheduling(gateway) as (scheduler, reports):
        scheduler.add(job)
        for _ in range(5):  # a few turns of the loop: the dispatcher looks at the job (and must not fail it)
            await asyncio.sleep(0)
        assert (scheduler.queued, reports.ended) == (1, {})
        assert (await gateway.admin.patch("/providers/llama", json={"enabled": True})).status_code == 200
        await all_ended(reports, [job])

    assert reports.ended[job.id].state == "succeeded"


@pytest.mark.asyncio
async def test_a_job_whose_model_no_provider_lists_any_more_fails_with_the_reason(gateway, llama_servers):
    (server,) = llama_servers(1, parallel=1)
    await gateway.add_provider("llama", server.base_url)
    job = make_job(await key_id_of(gateway, "app"))
    assert (await gateway.admin.delete("/providers/llama")).status_code in (200, 204)

    async with scheduling(gateway) as (scheduler, reports):
        scheduler.add(job)
        await all_ended(reports, [job])

    ended = reports.ended[job.id]
    assert ended.state == "failed"
    assert ended.error is not None
    assert ended.error["code"] == "model_not_found"
    assert reports.started == []
