"""What the job service does with the scheduler's reports, in-process: each is on disk before it is answered or
published, a report about a job that is no longer live (cancelled meanwhile) changes nothing, and a job retried
by an operator reaches its final state again with a new delivery id."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway_core.contracts.jobs import JobUsage
from gateway_core.jobs.model import Job, delivery_id
from gateway_core.jobs.service import JobService
from tests.fakes.fault_server import FaultServer

USAGE: JobUsage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
STUCK = {"model": "stuck", "messages": [{"role": "user", "content": "Never answered."}], "max_tokens": 1}


@pytest_asyncio.fixture
async def stuck_gateway(gateway: Any) -> AsyncIterator[tuple[Any, str]]:
    """The in-process gateway with one provider of the model, drained: jobs are accepted but the scheduler never
    starts them, so the test reports in its place. And a key."""
    with FaultServer(model="stuck") as stuck:
        stuck.set_mode("hang")
        await gateway.add_provider("stuck", stuck.base_url)
        await gateway.state.registry.reprobe("stuck")
        assert (await gateway.admin.post("/providers/stuck/drain")).status_code == 200
        key = await gateway.create_key("app")
        yield gateway, key


async def submitted(gateway: Any, key: str) -> Job:
    response = await gateway.public.post(
        "/v1/queue/chat/completions", json={"request": STUCK}, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 202, response.text
    jobs: JobService = gateway.state.jobs
    return await jobs.get(response.json()["id"], None)


def row(gateway: Any, job_id: str) -> tuple[str, int, int]:
    with sqlite3.connect(gateway.data_dir / "jobs.sqlite") as db:
        found: tuple[str, int, int] = db.execute(
            "SELECT state, attempts, finals FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    return found


@pytest.mark.asyncio
async def test_a_report_about_a_job_cancelled_meanwhile_changes_nothing(stuck_gateway):
    gateway, key = stuck_gateway
    jobs: JobService = gateway.state.jobs
    job = await submitted(gateway, key)
    await jobs.cancel(job.id, None)
    counts = jobs.counts()

    await jobs.on_started(job, 5, "stuck")
    await jobs.on_retry(job, None)
    await jobs.on_finished(job, "succeeded", USAGE, b'{"late": true}', None)

    after = await jobs.get(job.id, None)
    assert (after.state, after.result, after.finals) == ("cancelled", None, 1)
    assert row(gateway, job.id)[0] == "cancelled"
    assert jobs.counts() == counts


@pytest.mark.asyncio
async def test_each_report_is_on_disk_when_it_returns(stuck_gateway):
    gateway, key = stuck_gateway
    jobs: JobService = gateway.state.jobs
    job = await submitted(gateway, key)
    assert gateway.state.scheduler.cancel(job.id)  # out of the scheduler's queue: the test reports for it

    await jobs.on_started(job, 7, "stuck")
    assert row(gateway, job.id) == ("running", 7, 0)
    await jobs.on_retry(job, {"message": "upstream 503", "type": "upstream_error", "code": "upstream_503"})
    assert row(gateway, job.id) == ("queued", 7, 0)
    await jobs.on_finished(job, "succeeded", USAGE, b'{"object": "chat.completion"}', None)
    assert row(gateway, job.id) == ("succeeded", 7, 1)
    done = await jobs.get(job.id, None)
    assert done.usage == USAGE
    assert done.result == b'{"object": "chat.completion"}'


@pytest.mark.asyncio
async def test_a_retried_job_that_ends_again_names_a_new_delivery(stuck_gateway):
    gateway, key = stuck_gateway
    jobs: JobService = gateway.state.jobs
    job = await submitted(gateway, key)
    cancelled = await jobs.cancel(job.id, None)

    retried = await jobs.retry(job.id)
    assert gateway.state.scheduler.cancel(job.id)
    await jobs.on_finished(retried, "failed", None, None, {"message": "x", "type": "t", "code": None})

    failed = await jobs.get(job.id, None)
    assert failed.state == "failed"
    assert delivery_id(cancelled) != delivery_id(failed)
    assert (delivery_id(cancelled), delivery_id(failed)) == (
        f"msg_{job.id.removeprefix('job_')}_1",
        f"msg_{job.id.removeprefix('job_')}_2",
    )
