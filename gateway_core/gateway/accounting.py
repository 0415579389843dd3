"""What is running now and what has run since start: live requests and counters per key, model, provider."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway_core.clock import SYSTEM_CLOCK, Clock
from gateway_core.contracts.archive import CaptureMode, Source, StreamFrames
from gateway_core.contracts.views import CounterView, LiveRequestView, StatsView

SAMPLES = 1024  # latency samples kept per dimension for percentiles

Dimension = Literal["key", "model", "provider"]


@dataclass(slots=True)
class Timing:
    """Time spent upstream (until its response headers) versus in the gateway itself, for Server-Timing.

    perf_counter, not the injectable clock: this measures the gateway's own CPU-bound work.
    """

    started: float
    upstream_s: float = 0.0
    gateway_s: float = 0.0

    def header(self) -> str:
        self.gateway_s = max(0.0, time.perf_counter() - self.started - self.upstream_s)
        return f"gateway;dur={self.gateway_s * 1000:.2f}, upstream;dur={self.upstream_s * 1000:.2f}"


@dataclass(eq=False)
class LiveRequest:
    id: str
    key_id: str
    key_name: str
    model: str
    route: str
    stream: bool
    provider: str = ""
    started_at: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    first_token_mono: float | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cancel_requested: bool = False
    timing: Timing | None = field(default=None, repr=False)  # for the gateway-overhead metric
    # How to stop it: set by the pipeline for whichever phase is running.
    on_cancel: Callable[[], object] | None = field(default=None, repr=False)
    monotonic: Callable[[], float] = field(default=time.monotonic, repr=False)  # the clock started_mono is on
    # What the archive's record of it needs (gateway/archiving.py), gathered on the way.
    source: Source = "public"
    capture: CaptureMode = "off"
    client_address: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    providers_tried: tuple[str, ...] = ()
    upstream_model: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_body: bytes | None = field(default=None, repr=False)  # full capture only
    response_body: bytes | None = field(default=None, repr=False)  # full capture only
    frames: StreamFrames | None = field(default=None, repr=False)  # full capture of a stream only

    def view(self) -> LiveRequestView:
        now = self.monotonic()
        generating = now - self.first_token_mono if self.first_token_mono else 0.0
        return {
            "id": self.id,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "model": self.model,
            "provider": self.provider,
            "route": self.route,
            "stream": self.stream,
            "started_at": self.started_at,
            "elapsed_s": round(now - self.started_mono, 3),
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": round(self.completion_tokens / generating, 1) if generating > 0 else None,
        }

    def cancel(self) -> None:
        self.cancel_requested = True
        if self.on_cancel is not None:
            self.on_cancel()


class LiveRequests:
    """The requests in flight, by id: what GET /requests lists and what an operator's cancel finds."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._live: dict[str, LiveRequest] = {}
        self._ids = itertools.count(1)
        self._time = clock.time
        self._monotonic = clock.monotonic

    def start(
        self,
        *,
        key_id: str,
        key_name: str,
        model: str,
        route: str,
        stream: bool,
        timing: Timing,
        request_id: str | None = None,
    ) -> LiveRequest:
        request = LiveRequest(
            id=request_id or f"req-{next(self._ids)}",
            key_id=key_id,
            key_name=key_name,
            model=model,
            route=route,
            stream=stream,
            started_at=self._time(),
            started_mono=self._monotonic(),
            timing=timing,
            monotonic=self._monotonic,
        )
        self._live[request.id] = request
        return request

    def end(self, request: LiveRequest) -> None:
        self._live.pop(request.id, None)

    def get(self, request_id: str) -> LiveRequest | None:
        return self._live.get(request_id)

    def __iter__(self) -> Iterator[LiveRequest]:
        return iter(list(self._live.values()))  # a copy: requests end while a caller walks them

    def views(self) -> list[LiveRequestView]:
        return [request.view() for request in self._live.values()]

    def __len__(self) -> int:
        return len(self._live)


@dataclass
class Counter:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))

    def view(self) -> CounterView:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_p50_s": percentile(self.latencies, 50),
            "latency_p95_s": percentile(self.latencies, 95),
            "ttft_p50_s": percentile(self.ttfts, 50),
            "ttft_p95_s": percentile(self.ttfts, 95),
        }


def percentile(samples: deque[float], p: int) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, (len(ordered) * p) // 100)], 6)


class Stats:
    """Counters since start, by key, by model and by provider."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.started_at = clock.time()
        self.by: dict[Dimension, defaultdict[str, Counter]] = {
            "key": defaultdict(Counter),
            "model": defaultdict(Counter),
            "provider": defaultdict(Counter),
        }

    def record(
        self,
        *,
        key: str,
        model: str,
        provider: str,
        ok: bool,
        duration_s: float,
        ttft_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        names: tuple[tuple[Dimension, str], ...] = (("key", key), ("model", model), ("provider", provider or "(none)"))
        for dimension, name in names:
            counter = self.by[dimension][name]
            counter.requests += 1
            counter.errors += 0 if ok else 1
            counter.prompt_tokens += prompt_tokens
            counter.completion_tokens += completion_tokens
            if ok:
                counter.latencies.append(duration_s)
                if ttft_s is not None:
                    counter.ttfts.append(ttft_s)

    def view(self) -> StatsView:
        def counters(dimension: Dimension) -> dict[str, CounterView]:
            return {name: counter.view() for name, counter in self.by[dimension].items()}

        return {
            "since": self.started_at,
            "key": counters("key"),
            "model": counters("model"),
            "provider": counters("provider"),
        }
