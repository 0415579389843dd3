"""The hot path: authenticate, parse once, limit, route, forward with failover, account.

No disk I/O and no blocking call happens here; history and key last-used times are flushed elsewhere: each
request's archive record goes to the archive's bounded queue, and its writer (a process of its own) does the rest.
The pipeline is built once with what it uses (state.py wires it) and handles every proxied request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway_core.archive.capture import StreamCapture
from gateway_core.clock import Clock
from gateway_core.contracts.adapter import Adapter, Usage
from gateway_core.contracts.archive import ArchiveSink, RequestRecord
from gateway_core.contracts.errors import GatewayError, upstream_error_body
from gateway_core.contracts.request import ParsedRequest, parse, read_body
from gateway_core.contracts.request_id import HEADER as REQUEST_ID
from gateway_core.contracts.request_id import request_id_of
from gateway_core.contracts.sse import error_frame
from gateway_core.events import EventBus
from gateway_core.gateway import archiving
from gateway_core.gateway.accounting import LiveRequest, LiveRequests, Stats, Timing
from gateway_core.gateway.archiving import GpuMeter
from gateway_core.gateway.balancer import plan
from gateway_core.gateway.failures import Failures, internal_error
from gateway_core.gateway.keys import ApiKey, KeyRing
from gateway_core.gateway.limits import Lease, LimitExceeded, RateLimiter
from gateway_core.gateway.stream_response import EventStreamResponse
from gateway_core.gateway.warming import Warmer
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.adapters import adapter_for
from gateway_core.providers.registry import ProviderRegistry, Slot
from gateway_core.providers.router import (
    ROUTER_LOAD_TIMEOUT_S,
    ensure_model_ready,
    not_running,
    note_not_running,
    router_model_status,
)
from gateway_core.providers.runtime import ProviderRuntime
from gateway_core.providers.upstream import (
    TRANSPORT_ERRORS,
    UpstreamResponse,
    describe,
    is_stale_connection,
    stream_request_headers,
)

log = logging.getLogger("corral.gateway")

MAX_ATTEMPTS = 3
SATURATED_WAIT_S = 30.0  # how long a request waits for a slot when every provider is at its max concurrency
# A stream waiting longer than this for its model to load is answered at once, with SSE comments every as long
# until the model answers, so a proxy's idle timeout (nginx's is 60 s) does not cut it.
WARMING_KEEPALIVE_S = 5.0
ROUTER_RESENDS = 2  # a router-mode model found not running is loaded and the request sent again, at most this often
FAILOVER_STATUSES = frozenset({429, 500, 502, 503, 504})
# The identity the console and CLI use over the admin socket: every model, no limits.
ADMIN_KEY = ApiKey(id="admin", name="admin (console)", secret_sha256="")
CANCELLED = "the request was cancelled by an operator"
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection before the answer ended"
PROGRESS_EVERY_S = 0.25  # a streamed request's progress event goes out at most this often
STREAM_ENDINGS = {"cancelled": CLIENT_CLOSED, "internal_error": 500}  # a job's stream that ended badly: its status


class Pipeline:
    """Authenticate, limit, route and forward one request, then account for it.

    The request's own times (duration, time to first token, the live view's elapsed time) are read from the
    injected clock's monotonic time; the bounded wait for a free slot and the progress-event throttle pace
    real work on the event loop, so they read real time.
    """

    def __init__(
        self,
        *,
        keys: KeyRing,
        registry: ProviderRegistry,
        limiter: RateLimiter,
        live: LiveRequests,
        stats: Stats,
        metrics: GatewayMetrics,
        events: EventBus,
        failures: Failures,
        archive: ArchiveSink,
        gpu_meter: GpuMeter,
        body_cap: int,
        archive_body_cap: int,
        clock: Clock,
    ) -> None:
        self._keys = keys
        self._registry = registry
        self._limiter = limiter
        self._live = live
        self._stats = stats
        self._metrics = metrics
        self._events = events
        self._failures = failures
        self._archive = archive
        self._gpu_meter = gpu_meter
        self._body_cap = body_cap
        self._capture_cap = archive_body_cap  # a streamed answer's text is kept up to the archive's cap
        self._monotonic = clock.monotonic  # bound once: read several times per request
        self._time = clock.time
        self.waiting_for_slot = 0  # synchronous requests waiting now for a provider's slot (_plan_or_wait)
        self.warmer: Warmer | None = None  # models on demand: loads a cold model's deployment (state.py sets it)
        self.warming_keepalive_s = WARMING_KEEPALIVE_S

    async def handle(
        self, route: str, request: Request, *, admin: bool = False, request_id: str | None = None
    ) -> Response:
        """Answer one request. `request_id` is the one its answer carries; without it, the guard's (admin chat)."""
        timing = Timing(time.perf_counter())
        request_id = request_id or request_id_of(request.scope)
        key: ApiKey | None = None
        raw: bytes | None = None
        parsed: ParsedRequest | None = None
        try:
            key = ADMIN_KEY if admin else self._keys.authenticate(request.headers.get("authorization"))
            raw = await read_body(request, self._body_cap)
            parsed = parse(route, raw)
            candidates = routing_candidates(key, parsed, self._registry)
            try:
                lease = self._limiter.acquire(key.id, key.name, key.limits)
            except LimitExceeded as error:
                raise GatewayError(
                    429,
                    str(error),
                    code=f"{error.limit}_limit_exceeded",
                    headers={"retry-after": str(error.retry_after_s)},
                ) from error
        except GatewayError as error:
            self._archive_refusal(route, request, request_id, timing, key, raw, parsed, error, admin)
            return error.to_response({"server-timing": timing.header(), REQUEST_ID: request_id})
        live = self._live.start(
            key_id=key.id,
            key_name=key.name,
            model=parsed.model,
            route=route,
            stream=parsed.stream,
            timing=timing,
            request_id=request_id,
        )
        live.capture = capture = self._archive.capture_for(key.capture)
        if capture != "off":
            live.source = "admin" if admin else "public"
            live.client_address = archiving.client_address(request)
            live.bytes_in = len(raw)
            if capture == "full":
                live.request_body = raw
        self._events.publish("request.start", live.view())
        try:
            return await self._forward(parsed, lease, live, candidates, timing, "admin" if admin else "public")
        except BaseException as error:
            self._end_abruptly(live, lease, error)
            raise

    def _end_abruptly(self, live: LiveRequest, lease: Lease, error: BaseException) -> None:
        """Cancelled (the server stopping after its drain timeout), or a failure inside Corral that PublicApp
        (or the admin app's guard) answers as a 500: the attempt has given its slot back; end the request here
        so its key lease and live entry don't outlive it."""
        if self._live.get(live.id) is live:
            status = CLIENT_CLOSED if isinstance(error, asyncio.CancelledError) else 500
            live.error_code, live.error_message = (
                ("cancelled", "the request was cancelled as corral-core stopped")
                if status == CLIENT_CLOSED
                else ("internal_error", internal_error(live.id).message)
            )
            duration = self._monotonic() - live.started_mono
            self._account(live, lease, ok=False, status=status, usage=Usage(), duration=duration, ttft=None)

    # -- a queued job's attempt (gateway_core/jobs/runner.py): the same path, entered without HTTP --------------

    def admit_job(self, key_id: str, route: str, raw: bytes, request_id: str) -> JobTicket | OverLimit:
        """Admit one attempt of a job under its key, as `handle` admits a request: the key (still valid), the
        body, the model scope, then the key's limits. Over a limit it answers OverLimit instead of raising: the
        job waits. A job that can no longer run raises GatewayError (archived, source "queue")."""
        started = self._time()
        key = self._keys.find_by_id(key_id)
        parsed: ParsedRequest | None = None
        try:
            if key is None:
                raise GatewayError(401, f"the job's API key ({key_id}) was deleted", code="invalid_api_key")
            if key.revoked:
                raise GatewayError(401, f"API key '{key.name}' has been revoked", code="revoked_api_key")
            if key.expired(started):
                raise GatewayError(401, f"API key '{key.name}' has expired", code="expired_api_key")
            parsed = parse(route, raw)
            if parsed.stream:
                raise GatewayError(400, "a queued request cannot be streamed; remove 'stream'", param="stream")
            if not key.allows(parsed.model):
                raise model_not_allowed(key, parsed.model)
        except GatewayError as error:
            self._archive_job_refusal(request_id, route, started, key, key_id, raw, parsed, error)
            raise
        try:
            lease = self._limiter.acquire(key.id, key.name, key.limits)
        except LimitExceeded as error:
            return OverLimit(error.limit, error.retry_after_s)
        return JobTicket(key, parsed, raw, lease, request_id)

    async def run_job(self, ticket: JobTicket, order: list[ProviderRuntime]) -> JobAnswer:
        """Run an admitted attempt on `order` (providers with a free slot, the first to try first), with failover
        among them, accounted, measured and archived as a request (source "queue"). `ticket.cancel()` stops it
        and its upstream request, which frees the provider's slot.

        Chat and completions are streamed from the upstream (usage included), and the answer is the stream's
        frames (`JobAnswer.streamed`): llama-server notices a closed connection at once while it streams, not
        while it generates a whole answer, so only a stream's cancel frees its slot at once.

        The first slot is taken before this coroutine first suspends, so a caller that awaits it directly sees
        the provider's load include it."""
        key, lease = ticket.key, ticket.lease
        parsed = ticket.parsed
        if parsed.route != "embeddings":
            parsed = replace(parsed, body={**parsed.body, "stream": True}, stream=True, wants_usage=True)
        timing = Timing(time.perf_counter())
        live = ticket.live = self._live.start(
            key_id=key.id,
            key_name=key.name,
            model=parsed.model,
            route=parsed.route,
            stream=parsed.stream,
            timing=timing,
            request_id=ticket.request_id,
        )
        live.source = "queue"
        live.cancel_requested = ticket.cancel_requested
        live.capture = capture = self._archive.capture_for(key.capture)
        if capture != "off":
            live.bytes_in = len(ticket.raw)
            if capture == "full":
                live.request_body = ticket.raw
        self._events.publish("request.start", live.view())
        streamed = False
        try:
            response = await self._forward(parsed, lease, live, order, timing, "queue", order=order)
            if isinstance(response, EventStreamResponse):
                async with aclosing(response.chunks) as frames:  # closing early still runs the relay's clean-up
                    body = b"".join([frame async for frame in frames])
                streamed = True
            else:
                body = bytes(response.body)
        except BaseException as error:
            self._end_abruptly(live, lease, error)
            raise
        status = response.status_code
        if streamed and live.error_code is not None:  # the stream ended with an error frame
            status = STREAM_ENDINGS.get(live.error_code, 502)
        return JobAnswer(
            status=status,
            body=body,
            streamed=streamed,
            usage=Usage(live.prompt_tokens, live.completion_tokens),
            provider=live.provider or None,
            providers_tried=live.providers_tried,
            error_code=live.error_code if status >= 400 else None,
            error_message=live.error_message if status >= 400 else None,
        )

    def _archive_job_refusal(
        self,
        request_id: str,
        route: str,
        started: float,
        key: ApiKey | None,
        key_id: str,
        raw: bytes,
        parsed: ParsedRequest | None,
        error: GatewayError,
    ) -> None:
        capture = self._archive.capture_for(key.capture if key is not None else None)
        if capture == "off":
            return
        body = orjson.dumps(error.body())
        self._archive.record(
            RequestRecord(
                id=request_id,
                source="queue",
                route=route,
                started_at=started,
                first_token_at=None,
                ended_at=self._time(),
                key_id=key_id,
                key_name=key.name if key is not None else None,
                model=parsed.model if parsed is not None else None,
                provider=None,
                upstream_model=None,
                status=error.status,
                error_code=error.code,
                error_message=error.message,
                providers_tried=(),
                prompt_tokens=None,
                completion_tokens=None,
                latency_s=max(0.0, self._time() - started),
                ttft_s=None,
                stream=False,
                client_address=None,
                bytes_in=len(raw),
                bytes_out=len(body),
                capture=capture,
                request_body=raw if capture == "full" else None,
                response_body=body if capture == "full" else None,
            )
        )

    async def _forward(
        self,
        parsed: ParsedRequest,
        lease: Lease,
        live: LiveRequest,
        candidates: list[ProviderRuntime],
        timing: Timing,
        listener: str,
        order: list[ProviderRuntime] | None = None,
    ) -> Response:
        """Forward with failover; a job's attempt comes with its `order` planned on free capacity, and never waits."""
        if order is None:
            order = await self._plan_or_wait(candidates)
            if not order and self.warmer is not None and (cold := self.warmer.cold(candidates)):
                # Loading is no failure: nothing is tried, or counted, until the deployment answers /health.
                warming = asyncio.ensure_future(self.warmer.warm(cold, f"a request for '{parsed.model}' arrived"))
                await asyncio.wait({warming}, timeout=self.warming_keepalive_s if parsed.stream else None)
                if not warming.done():
                    headers = {"server-timing": timing.header(), REQUEST_ID: live.id, "cache-control": "no-cache"}
                    stream = self._while_warming(warming, parsed, lease, live, candidates, timing, listener)
                    await anext(stream)  # primed, as a relay is: closing it from here on runs its clean-up
                    return EventStreamResponse(stream, headers)
                refused = warming.result()
                if refused is not None:
                    return self._finish_early(live, lease, refused, timing)
                order = plan(candidates)
        if not order:
            return self._finish_early(live, lease, self._registry.no_route(parsed.model, candidates), timing)
        last_error: GatewayError | None = None
        for provider in order[:MAX_ATTEMPTS]:
            if live.cancel_requested:
                break
            if provider.router_models is None:
                outcome = await self._attempt(provider, parsed, live, timing)
            else:
                outcome = await self._attempt_router(provider, parsed, live, timing)
            if isinstance(outcome, GatewayError):
                last_error = outcome
                continue
            upstream, adapter, slot = outcome
            try:
                answer = await self._answer(provider, upstream, adapter, slot, parsed, live, lease, timing, listener)
            except BaseException:
                slot.release()  # released once however many hands reach it; the request is ended by handle()
                raise
            if isinstance(answer, GatewayError):
                last_error = answer
                continue
            return answer
        if live.cancel_requested:
            last_error = GatewayError(499, CANCELLED, code="cancelled")
        assert last_error is not None
        return self._finish_early(live, lease, last_error, timing)

    async def _while_warming(
        self,
        warming: asyncio.Future[GatewayError | None],
        parsed: ParsedRequest,
        lease: Lease,
        live: LiveRequest,
        candidates: list[ProviderRuntime],
        timing: Timing,
        listener: str,
    ) -> AsyncGenerator[bytes, None]:
        """A stream whose model is still loading: comments until it is warm, then the answer's own frames, or an
        error frame when the load fails (the status is already 200)."""
        accounted = False
        try:
            yield b""  # the priming step: nothing is sent
            while not warming.done():
                yield f": corral: loading model '{parsed.model}'\n\n".encode()
                await asyncio.wait({warming}, timeout=self.warming_keepalive_s)
            refused = warming.result()
            order = plan(candidates) if refused is None else []
            if order:
                response = await self._forward(parsed, lease, live, candidates, timing, listener, order=order)
                accounted = True  # the forward accounted for it, or its relay will, however it ends
                if isinstance(response, EventStreamResponse):
                    async with aclosing(response.chunks) as chunks:
                        async for chunk in chunks:
                            yield chunk
                    return
                error = orjson.loads(bytes(response.body))["error"]
                yield error_frame(error["message"], error["type"], error.get("code"))
                return
            failure = refused or self._registry.no_route(parsed.model, candidates)
            self._finish_early(live, lease, failure, timing)
            accounted = True
            yield error_frame(failure.message, str(failure.body()["error"]["type"]), failure.code)
        finally:
            if not accounted and self._live.get(live.id) is live:  # the client left while the model loaded
                live.error_code, live.error_message = "client_closed", "the client left while its model loaded"
                duration = self._monotonic() - live.started_mono
                self._account(live, lease, ok=False, status=CLIENT_CLOSED, usage=Usage(), duration=duration, ttft=None)

    async def _answer(
        self,
        provider: ProviderRuntime,
        upstream: UpstreamResponse,
        adapter: Adapter,
        slot: Slot,
        parsed: ParsedRequest,
        live: LiveRequest,
        lease: Lease,
        timing: Timing,
        listener: str,
    ) -> Response | GatewayError:
        """The client's answer from one provider's response; an error when that provider failed mid-answer."""
        if upstream.status >= 400:  # a 4xx the client must see, in OpenAI's error shape
            try:
                body = upstream_error_body(upstream.status, await upstream.read(), provider.name)
            except TRANSPORT_ERRORS as error:
                message = (
                    f"provider '{provider.name}' answered HTTP {upstream.status} and broke off ({describe(error)})"
                )
                body = orjson.dumps(GatewayError(upstream.status, message).body())
            finally:
                upstream.release()
            headers = {"server-timing": timing.header(), REQUEST_ID: live.id}
            self._note_answer(live, body, error=True)
            # A 4xx is the provider refusing the client's request, rightly: not an error of the provider's.
            self._release(
                slot, live, lease, ok=False, status=upstream.status, usage=Usage(), its_fault=upstream.status >= 500
            )
            return Response(body, status_code=upstream.status, media_type="application/json", headers=headers)
        if parsed.stream:
            headers = {
                "server-timing": timing.header(),
                REQUEST_ID: live.id,
                "cache-control": "no-cache",
                "x-corral-provider": provider.name,
            }
            stream = self._relay(slot, adapter, upstream, parsed, live, lease, listener)
            # Run it to its first yield: an async generator closed before it started skips its `finally`,
            # which is what gives the slot, the lease and the live entry back if the client leaves at once.
            await anext(stream)
            return EventStreamResponse(stream, headers)
        try:
            raw = await upstream.read()
        except TRANSPORT_ERRORS as error:
            self._attempt_failed(slot)
            return GatewayError(502, f"provider '{provider.name}' failed mid-answer: {describe(error)}")
        finally:
            upstream.release()
        try:
            body, usage = adapter.response(raw, parsed.model)
        except GatewayError as error:  # an answer that is not what the provider's API returns
            self._attempt_failed(slot)
            log.warning("provider %s: %s", provider.name, error.message)
            return error
        headers = {"server-timing": timing.header(), REQUEST_ID: live.id, "x-corral-provider": provider.name}
        self._note_answer(live, body, error=False)
        self._release(slot, live, lease, ok=True, status=200, usage=usage)
        return Response(body, media_type="application/json", headers=headers)

    async def _plan_or_wait(self, candidates: list[ProviderRuntime]) -> list[ProviderRuntime]:
        """Plan; when every healthy candidate is at its max concurrency, wait (bounded) for a slot to free."""
        deadline = time.monotonic() + SATURATED_WAIT_S
        while not (order := plan(candidates)) and any(p.saturated() for p in candidates):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.waiting_for_slot += 1  # only here, off the hot path: the job scheduler reads it (queue share)
            try:
                await asyncio.wait_for(self._registry.slot_released.wait(), remaining)
            except TimeoutError:
                break
            finally:
                self.waiting_for_slot -= 1
                if not self.waiting_for_slot:
                    self._registry.signal_slot_released()  # no request waits now: the scheduler may fill slots
        return order

    async def _attempt(
        self, provider: ProviderRuntime, parsed: ParsedRequest, live: LiveRequest, timing: Timing
    ) -> tuple[UpstreamResponse, Adapter, Slot] | GatewayError:
        """Send to one provider and wait for its response headers. Failures worth failing over become errors.

        On success the caller holds the provider's slot and releases it when the answer is over.
        """
        adapter = adapter_for(provider.config)
        try:
            url, payload, headers = adapter.build(parsed, provider.models[parsed.model])
        except GatewayError as error:
            return error
        if parsed.stream:
            headers = stream_request_headers(provider.config, headers)
        slot = self._registry.occupy(provider)
        provider.breaker.on_attempt()
        live.provider = provider.name
        live.providers_tried += (provider.name,)
        live.upstream_model = provider.models[parsed.model]
        self._gpu_meter.begin(live.id, provider.name)
        sent = time.perf_counter()
        try:
            upstream = await _send(provider, live, url, payload, headers)
        except (*TRANSPORT_ERRORS, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) and not live.cancel_requested:
                slot.release()  # the request itself is being cancelled; handle() ends it
                raise
            self._attempt_failed(slot)
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
            self._attempt_failed(slot)
            status = upstream.status if upstream.status in (429, 503) else 502
            return GatewayError(
                status, f"provider '{provider.name}' answered HTTP {upstream.status}: {detail}", code="upstream_error"
            )
        provider.breaker.record_success()
        return upstream, adapter, slot

    async def _attempt_router(
        self, provider: ProviderRuntime, parsed: ParsedRequest, live: LiveRequest, timing: Timing
    ) -> tuple[UpstreamResponse, Adapter, Slot] | GatewayError:
        """`_attempt` on a router-mode llama-server, whose model may not be loaded: loaded first (waiting for a
        load is not an attempt), and sent again when the router says it is not running after all. That is no
        failure of the router's: it unloaded the model since the last listing, or swapped it out for another
        model's request between loading it for this one and passing this one on."""
        upstream_model = provider.models[parsed.model]
        for _ in range(ROUTER_RESENDS + 1):
            if router_model_status(provider, upstream_model) != "loaded":  # no I/O when it is
                refused = await ensure_model_ready(provider, upstream_model, ROUTER_LOAD_TIMEOUT_S)
                if refused is not None:  # it failed to load, or still loads past the bound
                    return refused
            outcome = await self._attempt(provider, parsed, live, timing)
            if isinstance(outcome, GatewayError) or outcome[0].status != 400:
                return outcome
            upstream, _, slot = outcome
            try:
                body = await upstream.read()  # kept by the response: the 400's answer reads it again
            except TRANSPORT_ERRORS:
                return outcome  # the answer reports the break
            if not not_running(upstream.status, body):
                return outcome
            upstream.release()
            slot.release()
            note_not_running(provider, upstream_model)
            log.info(
                "router %s: model %s was not running as a request reached it; loading it again",
                provider.name,
                upstream_model,
            )
        return GatewayError(
            503,
            f"router '{provider.name}' swapped model '{upstream_model}' out {ROUTER_RESENDS + 1} times as requests "
            f"reached it (more models are in use than its --models-max runs at once); retry shortly",
            code="model_loading",
            headers={"retry-after": "1"},
        )

    def _attempt_failed(self, slot: Slot) -> None:
        slot.release()
        provider = slot.provider
        provider.breaker.record_failure()
        provider.record(0.0, ok=False)
        if provider.breaker.state == "open":
            log.warning("provider %s: circuit open after %d failures", provider.name, provider.breaker.failures)
            self._events.publish("provider", provider.summary())

    async def _relay(
        self,
        slot: Slot,
        adapter: Adapter,
        upstream: UpstreamResponse,
        parsed: ParsedRequest,
        live: LiveRequest,
        lease: Lease,
        listener: str,
    ) -> AsyncGenerator[bytes, None]:
        provider = slot.provider
        stream = adapter.stream(parsed.model, provider.models[parsed.model], parsed.wants_usage)
        live.on_cancel = upstream.close
        if live.cancel_requested:  # cancelled as the headers arrived: _send's task was done, its cancel a no-op
            upstream.close()
        ok = client_gone = failed_inside = False
        last_progress = 0.0
        frames = live.frames = StreamCapture(self._capture_cap) if live.capture == "full" else None
        try:
            yield b""  # the priming step (_forward): nothing is sent; from here on, closing runs the clean-up
            async for chunk in upstream.content.iter_any():
                out = stream.feed(chunk)
                if stream.has_content and live.first_token_mono is None:
                    live.first_token_mono = self._monotonic()
                live.completion_tokens = stream.content_frames
                now = time.monotonic()
                if now - last_progress > PROGRESS_EVERY_S:
                    last_progress = now
                    self._events.publish("request.progress", live.view())
                if out:
                    live.bytes_out += len(out)
                    if frames is not None:
                        frames.add(out)
                    yield out
            if live.cancel_requested:
                yield self._ending(live, frames, CANCELLED, "cancelled")
            else:
                tail = stream.finish()
                ok = stream.finished and not tail
                if tail:
                    yield self._ending(live, frames, "the upstream ended the stream before it finished", "", tail)
        except TRANSPORT_ERRORS as error:  # including the connection an operator's cancel closed
            message = (
                CANCELLED
                if live.cancel_requested
                else f"provider '{provider.name}' failed mid-stream: {describe(error)}"
            )
            yield self._ending(live, frames, message, "cancelled" if live.cancel_requested else "upstream_stream_cut")
        except Exception:  # a failure inside Corral: the stream has started, so it ends with an error event
            failed_inside = True
            self._failures.report(live.id, f"relaying a stream from {provider.name}", listener)
            yield self._ending(live, frames, internal_error(live.id).message, "internal_error", kind="server_error")
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
            its_fault = not (ok or live.cancel_requested or client_gone or failed_inside)
            if its_fault:
                provider.breaker.record_failure()
            status = (
                200 if ok else CLIENT_CLOSED if client_gone or live.cancel_requested else 500 if failed_inside else 502
            )
            if client_gone:
                live.error_code, live.error_message = "client_closed", "the client closed the connection mid-stream"
            self._release(slot, live, lease, ok=ok, status=status, usage=stream.usage, its_fault=its_fault)

    def _release(
        self,
        slot: Slot,
        live: LiveRequest,
        lease: Lease,
        *,
        ok: bool,
        status: int,
        usage: Usage,
        its_fault: bool = True,
    ) -> None:
        slot.release()
        duration = self._monotonic() - live.started_mono
        ttft = live.first_token_mono - live.started_mono if live.first_token_mono else None
        slot.provider.record(duration, ok=ok, its_fault=its_fault)
        self._account(live, lease, ok=ok, status=status, usage=usage, duration=duration, ttft=ttft)

    @staticmethod
    def _ending(
        live: LiveRequest,
        frames: StreamCapture | None,
        message: str,
        code: str,
        frame: bytes | None = None,
        kind: str = "upstream_error",
    ) -> bytes:
        """The error frame that ends a stream badly, noted for the archive as sent."""
        out = frame if frame is not None else error_frame(message, kind, code or None)
        live.error_code, live.error_message = code or "upstream_stream_cut", message
        live.bytes_out += len(out)
        if frames is not None:
            frames.add(out)
        return out

    @staticmethod
    def _note_answer(live: LiveRequest, body: bytes, *, error: bool) -> None:
        """A whole answer's size and, under full capture, the body itself; an error's code and message."""
        live.bytes_out = len(body)
        if live.capture == "full":
            live.response_body = body
        if error:
            live.error_code, live.error_message = _error_fields(body)

    def _archive_refusal(
        self,
        route: str,
        request: Request,
        request_id: str,
        timing: Timing,
        key: ApiKey | None,
        raw: bytes | None,
        parsed: ParsedRequest | None,
        error: GatewayError,
        admin: bool,
    ) -> None:
        capture = self._archive.capture_for(key.capture if key is not None else None)
        if capture == "off":
            return
        duration = time.perf_counter() - timing.started
        self._archive.record(
            archiving.refused(
                request_id=request_id,
                source="admin" if admin else "public",
                route=route,
                request=request,
                started_at=self._time() - duration,
                duration_s=duration,
                key=key,
                keys=self._keys,
                raw=raw,
                parsed=parsed,
                error=error,
                capture=capture,
            )
        )

    def _finish_early(self, live: LiveRequest, lease: Lease, error: GatewayError, timing: Timing) -> Response:
        headers = {"server-timing": timing.header(), REQUEST_ID: live.id}
        live.error_code, live.error_message = error.code, error.message
        live.bytes_out = len(orjson.dumps(error.body()))
        duration = self._monotonic() - live.started_mono
        self._account(live, lease, ok=False, status=error.status, usage=Usage(), duration=duration, ttft=None)
        return error.to_response(headers)

    def _account(
        self,
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
        self._live.end(live)
        live.completion_tokens = usage.completion_tokens or live.completion_tokens
        live.prompt_tokens = usage.prompt_tokens
        self._stats.record(
            key=live.key_name,
            model=live.model,
            provider=live.provider,
            ok=ok,
            duration_s=duration,
            ttft_s=ttft,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        self._metrics.request_finished(
            live.model,
            live.provider or "none",
            str(status),
            duration,
            ttft,
            usage.prompt_tokens,
            usage.completion_tokens,
            live.timing.gateway_s if live.timing is not None else 0.0,
        )
        self._events.publish(
            "request.end", {**live.view(), "status": status, "ok": ok, "prompt_tokens": usage.prompt_tokens}
        )
        gpu = self._gpu_meter.end(live.id)
        if live.capture != "off":
            self._archive.record(
                archiving.finished(live, status=status, usage=usage, duration_s=duration, ttft_s=ttft, gpu=gpu)
            )


@dataclass(frozen=True, slots=True)
class OverLimit:
    """A job's key is at one of its limits (rpm, tpm, concurrency): the job waits, its key skipped meanwhile."""

    limit: str
    retry_after_s: int


@dataclass(eq=False, slots=True)
class JobTicket:
    """One attempt of a job, admitted under its key's limits (it holds the key's lease) and not yet ended."""

    key: ApiKey
    parsed: ParsedRequest
    raw: bytes
    lease: Lease
    request_id: str
    live: LiveRequest | None = None  # once it runs
    cancel_requested: bool = False

    def cancel(self) -> None:
        """Stop it: before it runs, it will not send; while it runs, its upstream request is cancelled."""
        self.cancel_requested = True
        if self.live is not None:
            self.live.cancel()

    def discard(self) -> None:
        """Give the key's lease back for an attempt that will not run."""
        self.lease.release()


@dataclass(frozen=True, slots=True)
class JobAnswer:
    """How one attempt of a job ended: the status and body a synchronous client would have had."""

    status: int
    body: bytes  # the answer's JSON, or, when streamed, the stream's SSE frames (usage included)
    streamed: bool
    usage: Usage
    provider: str | None  # the provider that answered, or the last one tried
    providers_tried: tuple[str, ...]
    error_code: str | None
    error_message: str | None


MEDIA_WORDS = {"vision": "images", "audio": "audio input"}


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    """The code and message of an OpenAI-shaped error body (upstream_error_body made it so)."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (str(code) if code is not None else None), (str(message) if message is not None else None)


def routing_candidates(key: ApiKey, parsed: ParsedRequest, registry: ProviderRegistry) -> list[ProviderRuntime]:
    """The providers a request of `key` may go to, for a synchronous request and a job's submit alike: 403 for a
    model the key may not use, 404 (or 503 while loading) for one nobody serves, 400 for media none takes."""
    if not key.allows(parsed.model):
        raise model_not_allowed(key, parsed.model)
    candidates = registry.serving(parsed.model)
    if not candidates:
        raise registry.unknown_model(parsed.model)
    return taking_media(parsed, candidates) if parsed.media else candidates


def model_not_allowed(key: ApiKey, model: str) -> GatewayError:
    return GatewayError(
        403, f"API key '{key.name}' may not use model '{model}'", param="model", code="model_not_allowed"
    )


def taking_media(parsed: ParsedRequest, candidates: list[ProviderRuntime]) -> list[ProviderRuntime]:
    """The candidates that take the request's images or audio. A llama-server without a projector answers them
    with a 500, which would count against it: refused here instead, as the client's 400."""
    able = [provider for provider in candidates if provider.accepts(parsed.media)]
    if able:
        return able
    missing = [(k, p) for k, p in parsed.media.items() if not any(c.accepts((k,)) for c in candidates)]
    kind, param = missing[0] if missing else next(iter(parsed.media.items()))  # else: no one provider takes both
    names = ", ".join(provider.name for provider in candidates)
    raise GatewayError(
        400,
        f"{param}: model '{parsed.model}' cannot take {MEDIA_WORDS.get(kind, kind)}: no provider serving it "
        f"({names}) reports {kind} support (a llama-server needs a multimodal projector, --mmproj); remove the "
        "part, or use a model that takes it",
        param=param,
        code="unsupported_input",
    )


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
