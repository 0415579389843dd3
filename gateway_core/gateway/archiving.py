"""The archive's record of one request, built once when it ends; the pipeline hands it to the sink.

Building a record is the only archive work on the request path: a struct from what the request gathered on
the way (its LiveRequest), with the bodies as the path already holds them. Capping, redacting and writing
happen in the sink's writer (gateway_core/archive/).
"""

from __future__ import annotations

from typing import Protocol

import orjson
from starlette.requests import Request

from gateway_core.contracts.adapter import Usage
from gateway_core.contracts.archive import CaptureMode, RequestRecord, Source
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.request import ParsedRequest
from gateway_core.gateway.accounting import LiveRequest
from gateway_core.gateway.keys import ApiKey, KeyRing, split_token


class GpuMeter(Protocol):
    """GPU time and energy per request (fleet/energy.py's EnergyMeter): told when a request runs on a provider."""

    def begin(self, request_id: str, provider: str) -> None: ...

    def end(self, request_id: str) -> tuple[float | None, float | None]:
        """(GPU-seconds, joules) the request used on this box's GPUs; (None, None) when it ran on none."""
        ...


def client_address(request: Request) -> str | None:
    client = request.scope.get("client")
    return str(client[0]) if client else None


def finished(
    live: LiveRequest,
    *,
    status: int,
    usage: Usage,
    duration_s: float,
    ttft_s: float | None,
    gpu: tuple[float | None, float | None],
) -> RequestRecord:
    """The record of a request that was admitted (it had a live entry), however it ended."""
    started = live.started_at
    first_token = live.first_token_mono
    counted = status < 400 or usage.prompt_tokens > 0 or usage.completion_tokens > 0
    # Positional, in the struct's field order (contracts/archive.py says why); tests compare every field.
    return RequestRecord(
        live.id,  # id
        live.source,  # source
        live.route,  # route
        started,  # started_at
        started + (first_token - live.started_mono) if first_token is not None else None,  # first_token_at
        started + duration_s,  # ended_at
        live.key_id,  # key_id
        live.key_name,  # key_name
        live.model,  # model
        live.provider or None,  # provider
        live.upstream_model,  # upstream_model
        status,  # status
        live.error_code,  # error_code
        live.error_message,  # error_message
        live.providers_tried,  # providers_tried
        usage.prompt_tokens if counted else None,  # prompt_tokens
        usage.completion_tokens if counted else None,  # completion_tokens
        duration_s,  # latency_s
        ttft_s,  # ttft_s
        live.stream,  # stream
        live.client_address,  # client_address
        live.bytes_in,  # bytes_in
        live.bytes_out,  # bytes_out
        live.capture,  # capture
        live.request_body,  # request_body
        live.response_body,  # response_body
        live.frames,  # response_frames
        gpu[0],  # gpu_seconds
        gpu[1],  # energy_joules
    )


def refused(
    *,
    request_id: str,
    source: Source,
    route: str,
    request: Request,
    started_at: float,
    duration_s: float,
    key: ApiKey | None,
    keys: KeyRing,
    raw: bytes | None,
    parsed: ParsedRequest | None,
    error: GatewayError,
    capture: CaptureMode,
) -> RequestRecord:
    """The record of a request answered before it was admitted: 400, 401, 403, 404, 413, 429, 503.

    The key's id is kept whenever the token names one, even when the key was refused (never the token).
    """
    key_id, key_name = (key.id, key.name) if key is not None else _named_key(request, keys)
    body = orjson.dumps(error.body())
    declared = request.headers.get("content-length", "")
    return RequestRecord(
        id=request_id,
        source=source,
        route=route,
        started_at=started_at,
        first_token_at=None,
        ended_at=started_at + duration_s,
        key_id=key_id,
        key_name=key_name,
        model=parsed.model if parsed is not None else None,
        provider=None,
        upstream_model=None,
        status=error.status,
        error_code=error.code,
        error_message=error.message,
        providers_tried=(),
        prompt_tokens=None,
        completion_tokens=None,
        latency_s=duration_s,
        ttft_s=None,
        stream=parsed.stream if parsed is not None else False,
        client_address=client_address(request),
        bytes_in=len(raw) if raw is not None else int(declared) if declared.isdigit() else 0,
        bytes_out=len(body),
        capture=capture,
        request_body=raw if capture == "full" else None,
        response_body=body if capture == "full" else None,
    )


def _named_key(request: Request, keys: KeyRing) -> tuple[str | None, str | None]:
    """The key id a refused token names, and that key's name if it exists; never any part of the secret."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    parts = split_token(token.strip()) if scheme.lower() == "bearer" else None
    if parts is None:
        return None, None
    key = keys.find_by_id(parts[0])
    return parts[0], key.name if key is not None else None
