"""How the CLI and the console write queued jobs and callback deliveries, so both say the same thing the same way.
Values only (console/format.py's units); tables and colours stay with their callers."""

from __future__ import annotations

from gateway_core.contracts.jobs import DeliveryView, JobView

from .format import ago, count, dash, duration, until, utc_time


def job_age(job: JobView, now: float) -> str:
    """How long since it was submitted: "42s", "3m05s"."""
    return duration(now - job["created_at"])


def job_error(job: JobView) -> str:
    """Why it failed or was cancelled: "upstream_error: gpu0 answered 503", or "-"."""
    error = job["error"]
    if error is None:
        return "-"
    return f"{error['code']}: {error['message']}" if error["code"] else error["message"]


def job_facts(job: JobView, key_name: str | None, now: float) -> list[tuple[str, str]]:
    """A job's status object as (label, value) lines, for `corral jobs show` (the result follows them)."""
    usage = job["usage"]

    def moment(at: float | None) -> str:
        return "-" if at is None else f"{utc_time(at)} UTC ({ago(at, now)})"

    ran = job["started_at"], job["finished_at"]
    took = f" (ran {duration(ran[1] - ran[0])})" if ran[0] is not None and ran[1] is not None else ""
    return [
        ("id", job["id"]),
        ("ref_id", dash(job["ref_id"])),
        ("tag", dash(job["tag"])),
        ("state", job["state"]),
        ("key", f"{key_name or '-'} (id {job['key_id']})"),
        ("model", f"{job['model']} ({job['route']})"),
        ("priority", str(job["priority"])),
        ("created", moment(job["created_at"])),
        ("started", moment(job["started_at"])),
        ("finished", moment(job["finished_at"]) + took),
        ("attempts", str(job["attempts"])),
        ("provider", dash(job["provider"])),
        ("tokens", "-" if usage is None else f"{count(usage['prompt_tokens'])}+{count(usage['completion_tokens'])}"),
        ("error", job_error(job)),
        ("reply_to", dash(job["reply_to"])),
        ("status_url", job["status_url"]),
    ]


def delivery_outcome(delivery: DeliveryView) -> str:
    """The receiver's last answer: "200", "503", "timed out after 15s", or "-" before the first attempt."""
    if delivery["last_status"] is not None:
        return str(delivery["last_status"])
    return delivery["last_error"] or "-"


def delivery_when(delivery: DeliveryView, now: float) -> str:
    """What happens next, or what happened: "next in 4m12s", "delivered 3s ago", "dead 1h02m ago"."""
    if delivery["state"] == "pending":
        due = delivery["next_attempt_at"]
        return "due now" if due is None or due <= now else f"next {until(due, now)}"
    if delivery["state"] == "delivered":
        return f"delivered {ago(delivery['delivered_at'], now)}"
    return "dead"
