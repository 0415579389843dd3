"""What the admin API answers about the request archive: history rows, one request, usage over time.

Producers: gateway_core/archive/ (the store) through api/history.py. Readers: the client, the `corral
history` and `corral usage` commands, the console's History and Usage screens.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from gateway_core.contracts.archive import CaptureMode, Source

UsageDimension = Literal["key", "model", "provider"]
UsageBucket = Literal["hour", "day"]
# Errors by class, in rollups and usage answers: 401/403, 429, other 4xx, 499, 500, 502-504 and other 5xx.
ErrorClass = Literal["auth", "rate_limit", "client", "cancelled", "internal", "upstream"]
ERROR_CLASSES: tuple[ErrorClass, ...] = ("auth", "rate_limit", "client", "cancelled", "internal", "upstream")


class HistoryRowView(TypedDict):
    """One archived request without its bodies: GET /history rows."""

    id: str
    source: Source
    route: str
    started_at: float
    first_token_at: float | None
    ended_at: float
    key_id: str | None
    key_name: str | None
    model: str | None
    provider: str | None
    upstream_model: str | None
    status: int
    error_code: str | None
    error_message: str | None
    providers_tried: list[str]
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    ttft_s: float | None
    tokens_per_s: float | None
    stream: bool
    client_address: str | None
    bytes_in: int
    bytes_out: int
    capture: CaptureMode
    gpu_seconds: float | None
    energy_joules: float | None


class HistoryDetailView(HistoryRowView):
    """GET /history/{id}: the row and its bodies, as stored (capped, redacted).

    `response_format` is "json" for a whole answer's body, "text" for a streamed answer's assembled text.
    A body is None when it was not captured; `*_bytes` is its size before the cap.
    """

    request_body: str | None
    request_bytes: int | None
    request_truncated: bool
    response_body: str | None
    response_format: Literal["json", "text"] | None
    response_bytes: int | None
    response_truncated: bool


class HistoryPage(TypedDict):
    """GET /history: newest first. `next_cursor` fetches the next (older) page; None at the end."""

    rows: list[HistoryRowView]
    next_cursor: str | None
    months: list[str]  # the month files the query read, "YYYY-MM"


class UsagePoint(TypedDict):
    """One bucket of one group: GET /usage series points, read from the hourly rollups."""

    bucket_start: float  # Unix seconds, UTC, the start of the hour or day
    requests: int
    errors: int
    errors_by_class: dict[ErrorClass, int]
    prompt_tokens: int
    completion_tokens: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_s: float | None  # completion tokens over generation time, summed across the bucket's requests
    gpu_seconds: float | None  # None: no request in the bucket ran on this box's GPUs
    energy_joules: float | None


class UsageSeries(TypedDict):
    """One group's points (a key's name, a model, a provider) and its totals over the whole range."""

    group: str
    group_id: str | None  # the key id when grouped by key
    points: list[UsagePoint]
    total: UsagePoint  # bucket_start is the range's start


class UsageView(TypedDict):
    """GET /usage?by=&since=&until=&bucket=: one series per group, busiest first."""

    by: UsageDimension
    bucket: UsageBucket
    since: float
    until: float
    series: list[UsageSeries]


class ArchiveStatusView(TypedDict):
    """GET /archive, and `archive` in GET /status and the snapshot; the "archive" event when it changes.

    `state`: "ok"; "off" when the gateway's capture is off; "failing" when the writer cannot write (the
    reason is in `last_error`); "dropping" while rows are being dropped because the writer fell behind.
    """

    state: Literal["ok", "off", "failing", "dropping"]
    capture: CaptureMode
    directory: str
    queued: int
    written: int
    dropped: int
    last_error: str | None
    retain_months: int | None
    months: list[str]


class PruneAnswer(TypedDict):
    """POST /history/prune {"before": "YYYY-MM"}: the months removed, and how."""

    before: str
    months: list[str]
    action: Literal["deleted", "moved"]
    moved_to: str | None
