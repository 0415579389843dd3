"""Queued jobs and callback deliveries in the daemon's exact shapes (contracts/jobs.py), for the console's tests."""

from __future__ import annotations

from gateway_core.contracts.jobs import (
    CALLBACK_TYPES,
    DeliveryState,
    DeliveryView,
    JobCounts,
    JobState,
    JobView,
)
from tests.console.dashboard_data import NOW


def job(
    job_id: str,
    *,
    state: JobState = "queued",
    key_id: str = "a1b2c3d4e5f6",
    model: str = "qwen2.5-7b",
    created_at: float = NOW - 30,
    attempts: int | None = None,
    provider: str | None = None,
    tag: str | None = None,
    ref_id: str | None = None,
    reply_to: str | None = None,
) -> JobView:
    """Like the "job" event's view (no result) and one row of GET /jobs."""
    started = state != "queued" or bool(attempts)
    final = state in ("succeeded", "failed", "cancelled")
    return {
        "id": job_id,
        "ref_id": ref_id,
        "tag": tag,
        "state": state,
        "route": "chat",
        "model": model,
        "key_id": key_id,
        "priority": 0,
        "created_at": created_at,
        "started_at": created_at + 1 if started else None,
        "finished_at": created_at + 4 if final else None,
        "attempts": attempts if attempts is not None else (1 if started else 0),
        "provider": provider if provider is not None else ("gpu0" if started else None),
        "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52} if state == "succeeded" else None,
        "result": None,
        "error": {"message": "gpu0 answered 503 three times", "type": "upstream_error", "code": "upstream_error"}
        if state == "failed"
        else None,
        "status_url": f"/v1/queue/{job_id}",
        "reply_to": reply_to,
    }


def job_counts(queued: int = 0, running: int = 0, succeeded: int = 0, failed: int = 0, cancelled: int = 0) -> JobCounts:
    return {"queued": queued, "running": running, "succeeded": succeeded, "failed": failed, "cancelled": cancelled}


def delivery(
    delivery_id: str,
    *,
    job_id: str | None = None,
    state: DeliveryState = "pending",
    attempts: int = 1,
    created_at: float = NOW - 60,
    last_status: int | None = 503,
    last_error: str | None = None,
    job_state: JobState = "succeeded",
) -> DeliveryView:
    """Like GET /callbacks's rows and the "delivery" event; the job id is the one the delivery id names."""
    return {
        "id": delivery_id,
        "job_id": job_id or f"job_{delivery_id.split('_')[1]}",
        "key_id": "a1b2c3d4e5f6",
        "url": "https://hooks.example.com/corral",
        "type": CALLBACK_TYPES[job_state],
        "state": state,
        "attempts": attempts,
        "created_at": created_at,
        "next_attempt_at": NOW + 252 if state == "pending" else None,
        "delivered_at": NOW - 3 if state == "delivered" else None,
        "last_status": 200 if state == "delivered" else last_status,
        "last_error": last_error,
    }
