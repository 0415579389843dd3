"""What the request path hands the archive: one plain record per request, and the one call it makes.

The pipeline builds a `RequestRecord` when a request ends, however it ended (answered, refused, failed,
cancelled), and gives it to an `ArchiveSink`. `record` never blocks and never raises: a sink that cannot keep
up drops the record and counts it. Everything costly (capping and redacting bodies, assembling a streamed
answer's text, the SQL) happens in the sink's writer, off the event loop; so the record carries the bodies as
the request path already holds them (bytes, and the stream's frames), uncut.

The storage behind the sink (gateway_core/archive/) is one implementation of it: monthly SQLite files today,
PostgreSQL later, without touching the pipeline.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

# What is kept of a request: nothing, its metadata row, or the row with its bodies. Per gateway, per key.
CaptureMode = Literal["off", "metadata", "full"]
CAPTURE_MODES: tuple[CaptureMode, ...] = ("off", "metadata", "full")
# Where the request came from: an app on the public listener, the console's chat, or the job queue.
Source = Literal["public", "admin", "queue"]


class StreamFrames(Protocol):
    """A streamed answer's SSE frames as the client received them (gateway_core/archive/capture.py)."""

    def text(self) -> tuple[str, bool]:
        """The answer's assembled text, and whether frames were left out because the stream was too long."""
        ...


class RequestRecord(msgspec.Struct, gc=False):
    """One request, as it ended. Times are wall-clock Unix seconds; durations are seconds.

    Build it with keywords; the request path's one call (gateway/archiving.py `finished`) passes the fields in
    order instead, since a 30-field struct takes about 1.1 µs by keyword and 0.2 µs by position.
    """

    id: str  # the request id: the x-request-id header, the live view's id, the id in log lines
    source: Source
    route: str  # "chat" | "completions" | "embeddings"
    started_at: float
    first_token_at: float | None
    ended_at: float
    key_id: str | None  # the key's id when one could be parsed from the token, even when it was refused
    key_name: str | None
    model: str | None  # the public model the client asked for
    provider: str | None  # the provider that answered (or the last one tried)
    upstream_model: str | None  # the model name that provider was sent
    status: int
    error_code: str | None
    error_message: str | None
    providers_tried: tuple[str, ...]  # in order; the last one answered, unless the request failed
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    ttft_s: float | None
    stream: bool
    client_address: str | None
    bytes_in: int
    bytes_out: int
    capture: CaptureMode  # "metadata" or "full"; an "off" request never reaches the sink
    request_body: bytes | None = None  # full capture only: the body as received
    response_body: bytes | None = None  # full capture only: a whole answer as sent (or the error body)
    response_frames: StreamFrames | None = None  # full capture only: a streamed answer
    gpu_seconds: float | None = None  # None: not served on this box's GPUs (remote, hosted, CPU)
    energy_joules: float | None = None  # None: no power reading for those GPUs


class ArchiveSink(Protocol):
    """Where the pipeline sends each finished request. Must never block and never raise."""

    def record(self, record: RequestRecord) -> None: ...

    def capture_for(self, key_capture: CaptureMode | None) -> CaptureMode:
        """The capture mode for a request: the key's own, else the gateway's."""
        ...
