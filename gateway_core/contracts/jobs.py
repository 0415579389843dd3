"""Queued jobs and their ReplyTo callbacks, as the public queue API, the admin API and the event stream show them.

A job is one OpenAI request (chat, completions or embeddings) that an app submitted to the queue instead of
waiting for it: corral-core keeps it on disk, runs it on free provider capacity, and tells the app how it ended
by polling (`GET /v1/queue/{id}`) or by a signed callback to its `reply_to` URL (Standard Webhooks).

These are the wire shapes only; the rules live in gateway_core/jobs/ (the queue) and gateway_core/callbacks/
(the deliveries).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

import msgspec

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES: frozenset[JobState] = frozenset({"succeeded", "failed", "cancelled"})
JobRoute = Literal["chat", "completions", "embeddings"]

# The callback's event types, one per final state.
CallbackType = Literal["job.succeeded", "job.failed", "job.cancelled"]
CALLBACK_TYPES: dict[JobState, CallbackType] = {
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
}

DeliveryState = Literal["pending", "delivered", "dead"]  # dead: every attempt failed (dead-lettered), or a 410


class JobUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class JobError(TypedDict):
    """Why a job failed or was cancelled: OpenAI's error fields."""

    message: str
    type: str
    code: str | None


class JobView(TypedDict):
    """GET /v1/queue/{id} (the key's own job), the admin API's job, the "job" event, a callback's `data`."""

    id: str  # "job_" + 26 characters; also the archive row's request id once it has run
    ref_id: str | None  # the app's own id for it: unique per key, so a resubmit finds the same job
    tag: str | None
    state: JobState
    route: JobRoute
    model: str
    key_id: str
    priority: int  # higher runs first, within its key
    created_at: float  # Unix seconds
    started_at: float | None  # the last attempt's start
    finished_at: float | None
    attempts: int  # attempts started so far; a job running at a kill -9 counts that attempt
    provider: str | None  # the provider of the last attempt
    usage: JobUsage | None
    result: object | None  # succeeded: the OpenAI response body, as JSON
    error: JobError | None  # failed or cancelled
    status_url: str  # the public path to poll: /v1/queue/{id}
    reply_to: str | None  # the callback URL, if any


class JobSubmitted(TypedDict):
    """POST /v1/queue/...: 202 for a new job, 200 for the existing job of the same key and ref_id."""

    id: str
    ref_id: str | None
    state: JobState
    status_url: str


class JobPage(TypedDict):
    """GET /v1/queue (one key's jobs) and GET /jobs (admin: every key's), newest first."""

    object: Literal["list"]
    data: list[JobView]
    next_cursor: str | None  # pass as ?cursor= for the next page; None: this was the last


class JobCounts(TypedDict):
    """How many jobs are in each state now (the Jobs panel's header, `corral jobs list`)."""

    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class DeliveryView(TypedDict):
    """One callback delivery: GET /callbacks (admin), the "delivery" event."""

    id: str  # the webhook-id header: the same on every attempt of this delivery
    job_id: str
    key_id: str
    url: str
    type: CallbackType
    state: DeliveryState
    attempts: int
    created_at: float
    next_attempt_at: float | None  # pending only
    delivered_at: float | None
    last_status: int | None  # the receiver's last HTTP status; None: no answer (see last_error)
    last_error: str | None


class DeliveryPage(TypedDict):
    object: Literal["list"]
    data: list[DeliveryView]
    next_cursor: str | None


class WebhookSecretView(TypedDict):
    """POST /keys/{id}/webhook-secret (rotate): the new secret, shown this once; until when the old one signs too."""

    key_id: str
    webhook_secret: str  # "whsec_" + base64 of 32 random bytes (the Standard Webhooks format)
    previous_valid_until: float | None  # Unix seconds; None: there was no previous secret


class QueueSubmit(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/queue/chat/completions (and /completions, /embeddings).

    `request` is the OpenAI body, validated exactly as the synchronous route validates it; a job that could
    never run (unknown model, a model the key may not use, a bad body, an undeliverable reply_to) is refused
    here, not failed later. A queued request is never streamed: `"stream": true` is refused.
    """

    request: dict[str, Any]
    ref_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    reply_to: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None
    tag: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    provider: Annotated[str, msgspec.Meta(min_length=1)] | None = None  # run only on this provider
    priority: Annotated[int, msgspec.Meta(ge=-100, le=100)] = 0
