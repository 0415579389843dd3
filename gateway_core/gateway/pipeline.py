"""The hot path: authenticate, parse once, limit, route, forward with failover, account.

No disk I/O and no blocking call happens here; history and key last-used times are flushed elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway_core.contracts.adapter import Adapter, Usage
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.request import ParsedRequest, parse, read_body
from gateway_core.contracts.sse import error_frame
from gateway_core.gateway.accounting import LiveRequest
from gateway_core.gateway.balancer import plan
from gateway_core.gateway.keys import ApiKey
from gateway_core.gateway.limits import Lease, LimitExceeded
from gateway_core.gateway.stream_response import EventStreamResponse
from gateway_core.providers.adapters import adapter_for
from gateway_core.providers.runtime import ProviderRuntime
from gateway_core.providers.upstream import (
    TRANSPORT_ERRORS,
    UpstreamResponse,
    describe,
    is_stale_connection,
    stream_request_headers,
)
from gateway_core.state import GatewayState

log = logging.getLogger("corral.gateway")

MAX_ATTEMPTS = 3
SATURATED_WAIT_S = 30.0  # how long a request waits for a slot when every provider is at its max concurrency
FAILOVER_STATUSES = frozenset({429, 500, 502, 503, 504})
# The identity the console and CLI use over the admin socket: every model, no limits.
ADMIN_KEY = ApiKey(id="admin", name="admin (console)", secret_sha256="")
CANCELLED = "the request was cancelled by an operator"
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection before the answer ended"


@dataclass
class Timing:
    """Time spent upstream (until its response headers) versus in the gateway itself."""

    started: float
    upstream_s: float = 0.0
    gateway_s: float = 0.0

    def header(self) -> str:
        self.gateway_s = max(0.0, time.perf_counter() - self.started - self.upstream_s)
        return f"gateway;dur={self.gateway_s * 1000:.2f}, upstream;dur={self.upstream_s * 1000:.2f}"


async def handle(state: GatewayState, route: str, request: Request, *, admin: bool = False) -> Response:
    timing = Timing(time.perf_counter())
    try:
        key = ADMIN_KEY if admin else state.keys.authenticate(request.headers.get("authorization"))
        parsed = parse(route, await read_body(request, state.body_cap))
        if not key.allows(parsed.model):
            raise GatewayError(
                403, f"API key '{key.name}' may not use model '{parsed.model}'", param="model", code="model_not_allowed"
            )
        candidates = state.serving(parsed.model)
        if not candidates:
            raise _unknown_model(state, parsed.model)
        try:
            lease = state.limiter.acquire(key.id, key.name, key.limits)
        except LimitExceeded as error:
            raise GatewayError(
                429, str(error), code=f"{error.limit}_limit_exceeded", headers={"retry-after": str(error.retry_after_s)}
            ) from error
    except GatewayError as error:
        return error.to_response({"server-timing": timing.header()})
    live = state.live.start(
        key_id=key.id, key_name=key.name, model=parsed.model, route=route, stream=parsed.stream, timing=timing
    )
    state.events.publish("request.start", live.view())
    return await _forward(state, parsed, key, lease, live, candidates, timing)


async def _forward(
    state: GatewayState,
    parsed: ParsedRequest,
    key: ApiKey,
    lease: Lease,
    live: LiveRequest,
    candidates: list[ProviderRuntime],
    timing: Timing,
) -> Response:
    order = await _plan_or_wait(state, candidates)
    if not order:
        states = ", ".join(f"{p.name} {p.state}" for p in candidates)
        error = GatewayError(
            503,
            f"no provider for model '{parsed.model}' is ready ({states}); retry shortly",
            code="no_provider_ready",
            headers={"retry-after": "1"},
        )
        return _finish_early(state, live, lease, error, timing)
    last_error: GatewayError | None = None
    for provider in order[:MAX_ATTEMPTS]:
        if live.cancel_requested:
            break
        outcome = await _attempt(state, provider, parsed, live, timing)
        if isinstance(outcome, GatewayError):
            last_error = outcome
            continue
        upstream, adapter = outcome
        if upstream.status >= 400:  # a 4xx the client must see as it is
            try:
                body = await upstream.read()
            except TRANSPORT_ERRORS as error:
                body = orjson.dumps(
                    GatewayError(
                        upstream.status,
                        f"provider '{provider.name}' answered HTTP {upstream.status} and broke off ({describe(error)})",
                    ).body()
                )
            finally:
                upstream.release()
            headers = {"server-timing": timing.header()}
            _release(state, provider, live, lease, ok=False, status=upstream.status, usage=Usage())
            return Response(body, status_code=upstream.status, media_type="application/json", headers=headers)
        if parsed.stream:
            headers = {
                "server-timing": timing.header(),
                "cache-control": "no-cache",
                "x-corral-provider": provider.name,
            }
            stream = _relay(state, provider, adapter, upstream, parsed, live, lease)
            return EventStreamResponse(stream, headers)
        try:
            raw = await upstream.read()
        except TRANSPORT_ERRORS as error:
            provider.breaker.record_failure()
            last_error = GatewayError(502, f"provider '{provider.name}' failed mid-answer: {describe(error)}")
            _release(state, provider, live, lease, ok=False, status=502, usage=Usage())
            continue
        finally:
            upstream.release()
        body, usage = adapter.response(raw, parsed.model)
        headers = {"server-timing": timing.header(), "x-corral-provider": provider.name}
        _release(state, provider, live, lease, ok=True, status=200, usage=usage)
        return Response(body, media_type="application/json", headers=headers)
    if live.cancel_requested:
        last_error = GatewayError(499, CANCELLED, code="cancelled")
    assert last_error is not None
    return _finish_early(state, live, lease, last_error, timing)


async def _plan_or_wait(state: GatewayState, candidates: list[ProviderRuntime]) -> list[ProviderRuntime]:
    """Plan; when every healthy candidate is at its max concurrency, wait (bounded) for a slot to free."""
    deadline = time.monotonic() + SATURATED_WAIT_S
    while not (order := plan(candidates)) and any(p.saturated() for p in candidates):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            await asyncio.wait_for(state.slot_released.wait(), remaining)
        except TimeoutError:
            break
    return order


async def _attempt(
    state: GatewayState, provider: ProviderRuntime, parsed: ParsedRequest, live: LiveRequest, timing: Timing
) -> tuple[UpstreamResponse, Adapter] | GatewayError:
    """Send to one provider and wait for its response headers. Failures worth failing over become errors."""
    adapter = adapter_for(provider.config)
    try:
        url, payload, headers = adapter.build(parsed, provider.models[parsed.model])
    except GatewayError as error:
        return error
    if parsed.stream:
        headers = stream_request_headers(provider.config, headers)
    provider.in_flight += 1
    provider.breaker.on_attempt()
    state.metrics.in_flight(provider.name, 1)
    live.provider = provider.name
    sent = time.perf_counter()
    try:
        upstream = await _send(provider, live, url, payload, headers)
    except (*TRANSPORT_ERRORS, asyncio.CancelledError) as error:
        if isinstance(error, asyncio.CancelledError) and not live.cancel_requested:
            raise
        _attempt_failed(state, provider)
        reason = "cancelled" if live.cancel_requested else describe(error)
        log.warning("provider %s failed before answering (%s); failing over", provider.name, reason)
        return GatewayError(
            503, f"provider '{provider.name}' could not be reached ({reason})", code="provider_unreachable"
        )
    finally:
        timing.upstream_s += time.perf_counter() - sent
        live.on_cancel = None
    if upstream.status in FAILOVER_STATUSES:
        try:
            detail = (await upstream.read())[:300].decode(errors="replace")
        except TRANSPORT_ERRORS as error:
            detail = f"(broke off: {describe(error)})"
        finally:
            upstream.release()
        _attempt_failed(state, provider)
        status = upstream.status if upstream.status in (429, 503) else 502
        return GatewayError(
            status, f"provider '{provider.name}' answered HTTP {upstream.status}: {detail}", code="upstream_error"
        )
    provider.breaker.record_success()
    return upstream, adapter


async def _send(
    provider: ProviderRuntime, live: LiveRequest, url: str, payload: bytes, headers: dict[str, str]
) -> UpstreamResponse:
    """Send and wait for the response headers, in a task an operator's cancel can stop.

    A kept-alive connection the upstream closed just as it was reused fails before any answer: that is the
    pool's stale connection, not the provider failing, so the request is tried once more.
    """
    for last_try in (False, True):
        pending = asyncio.ensure_future(_post(provider, url, payload, headers))
        live.on_cancel = pending.cancel
        try:
            return await pending
        except TRANSPORT_ERRORS as error:
            if last_try or live.cancel_requested or not is_stale_connection(error):
                raise
    raise AssertionError("unreachable")


async def _post(provider: ProviderRuntime, url: str, payload: bytes, headers: dict[str, str]) -> UpstreamResponse:
    return await provider.session.post(url, data=payload, headers=headers)


def _unknown_model(state: GatewayState, model: str) -> GatewayError:
    # A provider still loading has not listed its models yet: that is "try again soon", not "no such model".
    undiscovered = [
        p.name for p in state.providers.values() if p.config.enabled and not p.models and p.health != "ready"
    ]
    if undiscovered:
        return GatewayError(
            503,
            f"model '{model}' is not listed by any ready provider; {', '.join(undiscovered)} "
            "have not listed their models yet (loading or down); retry shortly",
            code="no_provider_ready",
            headers={"retry-after": "2"},
        )
    return GatewayError(
        404,
        f"model '{model}' is not served here; `GET /v1/models` lists the models",
        param="model",
        code="model_not_found",
    )


def _attempt_failed(state: GatewayState, provider: ProviderRuntime) -> None:
    provider.in_flight -= 1
    state.signal_slot_released()
    provider.breaker.record_failure()
    provider.record(0.0, ok=False)
    state.metrics.in_flight(provider.name, -1)
    if provider.breaker.state == "open":
        log.warning("provider %s: circuit open after %d failures", provider.name, provider.breaker.failures)
        state.events.publish("provider", provider.summary())


async def _relay(
    state: GatewayState,
    provider: ProviderRuntime,
    adapter: Adapter,
    upstream: UpstreamResponse,
    parsed: ParsedRequest,
    live: LiveRequest,
    lease: Lease,
) -> AsyncIterator[bytes]:
    stream = adapter.stream(parsed.model, provider.models[parsed.model], parsed.wants_usage)
    live.on_cancel = upstream.close
    ok = client_gone = False
    last_progress = 0.0
    try:
        async for chunk in upstream.content.iter_any():
            out = stream.feed(chunk)
            if stream.has_content and live.first_token_mono is None:
                live.first_token_mono = time.monotonic()
            live.completion_tokens = stream.content_frames
            now = time.monotonic()
            if now - last_progress > 0.25:
                last_progress = now
                state.events.publish("request.progress", live.view())
            if out:
                yield out
        if live.cancel_requested:
            yield error_frame(CANCELLED, code="cancelled")
        else:
            tail = stream.finish()
            ok = stream.finished and not tail
            if tail:
                yield tail
    except TRANSPORT_ERRORS as error:  # including the connection an operator's cancel closed
        message = (
            CANCELLED if live.cancel_requested else f"provider '{provider.name}' failed mid-stream: {describe(error)}"
        )
        yield error_frame(message, code="cancelled" if live.cancel_requested else "upstream_stream_cut")
    except (asyncio.CancelledError, GeneratorExit):  # the client went away; not the provider's fault
        client_gone = True
        raise
    finally:
        # Closing the upstream connection is what frees the llama-server slot when the client went away;
        # a finished stream's connection goes back to the pool instead.
        if ok:
            upstream.release()
        else:
            upstream.close()
        its_fault = not (ok or live.cancel_requested or client_gone)
        if its_fault:
            provider.breaker.record_failure()
        status = 200 if ok else CLIENT_CLOSED if client_gone else 502
        _release(state, provider, live, lease, ok=ok, status=status, usage=stream.usage, its_fault=its_fault)


def _release(
    state: GatewayState,
    provider: ProviderRuntime,
    live: LiveRequest,
    lease: Lease,
    *,
    ok: bool,
    status: int,
    usage: Usage,
    its_fault: bool = True,
) -> None:
    provider.in_flight -= 1
    state.signal_slot_released()
    state.metrics.in_flight(provider.name, -1)
    duration = time.monotonic() - live.started_mono
    ttft = live.first_token_mono - live.started_mono if live.first_token_mono else None
    provider.record(duration, ok=ok, its_fault=its_fault)
    _account(state, live, lease, ok=ok, status=status, usage=usage, duration=duration, ttft=ttft)


def _finish_early(
    state: GatewayState, live: LiveRequest, lease: Lease, error: GatewayError, timing: Timing
) -> Response:
    headers = {"server-timing": timing.header()}
    _account(
        state,
        live,
        lease,
        ok=False,
        status=error.status,
        usage=Usage(),
        duration=time.monotonic() - live.started_mono,
        ttft=None,
    )
    return error.to_response(headers)


def _account(
    state: GatewayState,
    live: LiveRequest,
    lease: Lease,
    *,
    ok: bool,
    status: int,
    usage: Usage,
    duration: float,
    ttft: float | None,
) -> None:
    lease.add_tokens(usage.prompt_tokens + usage.completion_tokens)
    lease.release()
    state.live.end(live)
    live.completion_tokens = usage.completion_tokens or live.completion_tokens
    state.stats.record(
        key=live.key_name,
        model=live.model,
        provider=live.provider,
        ok=ok,
        duration_s=duration,
        ttft_s=ttft,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
    )
    state.metrics.request_finished(
        live.model,
        live.provider or "none",
        str(status),
        duration,
        ttft,
        usage.prompt_tokens,
        usage.completion_tokens,
        live.timing.gateway_s,
    )
    state.events.publish(
        "request.end", {**live.view(), "status": status, "ok": ok, "prompt_tokens": usage.prompt_tokens}
    )
