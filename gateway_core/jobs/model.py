"""A queued job as the daemon keeps it: the wire's JobView plus what running and delivering it need.

The store (store.py) persists `Job`s; the service hands them to the scheduler and turns them into `JobView`s for
the API, the event stream and callbacks. `result` stays the upstream's JSON bytes, decoded only when shown.
"""

from __future__ import annotations

import os

import msgspec

from gateway_core.contracts.jobs import JobError, JobRoute, JobState, JobUsage, JobView

ID_PREFIX = "job_"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_job_id(now: float) -> str:
    """ "job_" + a ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base32 characters, so ids
    sort by creation time and cannot be guessed."""
    value = (int(now * 1000) & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return ID_PREFIX + "".join(chars)


class Job(msgspec.Struct, kw_only=True):
    id: str  # "job_" + 26 characters
    key_id: str
    route: JobRoute
    model: str
    body: bytes  # the OpenAI request as submitted (its JSON)
    seq: int  # submission order, unique; the store assigns it in add()
    created_at: float
    queued_at: float  # when it last joined the queue: submit, or an operator's retry
    state: JobState = "queued"
    ref_id: str | None = None
    tag: str | None = None
    priority: int = 0
    reply_to: str | None = None
    pinned_provider: str | None = None  # QueueSubmit.provider: run only there
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0  # attempts started so far, the one running at a kill -9 included
    base_attempts: int = 0  # attempts made before an operator's last retry: the attempt limit counts those after
    provider: str | None = None  # the provider of the last attempt
    usage: JobUsage | None = None
    result: bytes | None = None  # succeeded: the OpenAI response body (JSON bytes)
    error: JobError | None = None  # failed or cancelled; while queued again after a failed attempt, its error
    finals: int = 0  # how many times it reached a final state: names its callback deliveries
    callback_due: bool = False  # final with a reply_to, its delivery not yet handed to the callback service


def status_url(job_id: str) -> str:
    return f"/v1/queue/{job_id}"


def delivery_id(job: Job) -> str:
    """The callback's webhook-id: one per final state reached, the same on every attempt of that delivery."""
    return f"msg_{job.id.removeprefix(ID_PREFIX)}_{job.finals}"


def job_view(job: Job, *, with_result: bool = True) -> JobView:
    """The job as the API shows it; the event stream leaves `result` out (with_result=False)."""
    result: object | None = None
    if with_result and job.result is not None:
        result = msgspec.json.decode(job.result)
    return {
        "id": job.id,
        "ref_id": job.ref_id,
        "tag": job.tag,
        "state": job.state,
        "route": job.route,
        "model": job.model,
        "key_id": job.key_id,
        "priority": job.priority,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempts": job.attempts,
        "provider": job.provider,
        "usage": job.usage,
        "result": result,
        "error": job.error,
        "status_url": status_url(job.id),
        "reply_to": job.reply_to,
    }
