"""What is running now and what has run since start: live requests and counters per key, model, provider."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SAMPLES = 1024  # latency samples kept per dimension for percentiles


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
    timing: Any = field(default=None, repr=False)  # the pipeline's Timing, for the gateway-overhead metric
    # How to stop it: set by the pipeline for whichever phase is running.
    on_cancel: Callable[[], None] | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started_mono
        generating = time.monotonic() - self.first_token_mono if self.first_token_mono else 0.0
        return {
            "id": self.id,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "model": self.model,
            "provider": self.provider,
            "route": self.route,
            "stream": self.stream,
            "started_at": self.started_at,
            "elapsed_s": round(elapsed, 3),
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": round(self.completion_tokens / generating, 1) if generating > 0 else None,
        }

    def cancel(self) -> None:
        self.cancel_requested = True
        if self.on_cancel is not None:
            self.on_cancel()


class LiveRequests:
    def __init__(self) -> None:
        self._live: dict[str, LiveRequest] = {}
        self._ids = itertools.count(1)

    def start(self, **fields: Any) -> LiveRequest:
        request = LiveRequest(id=f"req-{next(self._ids)}", **fields)
        self._live[request.id] = request
        return request

    def end(self, request: LiveRequest) -> None:
        self._live.pop(request.id, None)

    def get(self, request_id: str) -> LiveRequest | None:
        return self._live.get(request_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._live.values()))

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

    def view(self) -> dict[str, Any]:
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

    def __init__(self) -> None:
        self.started_at = time.time()
        self.by: dict[str, defaultdict[str, Counter]] = {
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
        for dimension, name in (("key", key), ("model", model), ("provider", provider or "(none)")):
            counter = self.by[dimension][name]
            counter.requests += 1
            counter.errors += 0 if ok else 1
            counter.prompt_tokens += prompt_tokens
            counter.completion_tokens += completion_tokens
            if ok:
                counter.latencies.append(duration_s)
                if ttft_s is not None:
                    counter.ttfts.append(ttft_s)

    def view(self) -> dict[str, Any]:
        return {
            "since": self.started_at,
            **{dimension: {name: c.view() for name, c in counters.items()} for dimension, counters in self.by.items()},
        }


async def cancel_quietly(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
