"""Prometheus metrics for the gateway, in a registry of its own so several gateways in one process never collide."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PROVIDER_STATES = ("ready", "loading", "down", "circuit_open")
TOKEN_KINDS = ("prompt", "completion")

# LLM calls range from a cached embedding (milliseconds) to a long generation (minutes).
LLM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
# One archive batch: a few rows in a millisecond to a full queue of bodies in a second or two.
ARCHIVE_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A job's wait in the queue: none on an idle gateway, hours behind a deep queue.
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0)
ATTEMPT_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0)


@dataclass(slots=True)
class _RequestSeries:
    """The series one finished request updates, for one (model, provider, status)."""

    requests: Counter
    duration: Histogram
    prompt_tokens: Counter
    completion_tokens: Counter
    ttft: Histogram | None = (
        None  # labelled on the first request that has one, so embeddings never export an empty TTFT
    )


class GatewayMetrics:
    """The gateway's metric families, updated on the hot path and rendered for GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "corral_requests_total",
            "Requests answered, by public model, provider and HTTP status.",
            ["model", "provider", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "corral_request_duration_seconds",
            "Time from receiving a request to sending its last byte.",
            ["model", "provider"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "corral_time_to_first_token_seconds",
            "Time from receiving a streamed request to its first token.",
            ["model", "provider"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "corral_gateway_overhead_seconds",
            "Time the gateway itself adds to a request, upstream time excluded.",
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "corral_tokens_total",
            "Tokens processed, by public model, provider and kind (prompt or completion).",
            ["model", "provider", "kind"],
            registry=registry,
        )
        self.requests_in_flight = Gauge(
            "corral_requests_in_flight",
            "Requests being forwarded to each provider now.",
            ["provider"],
            registry=registry,
        )
        self.provider_up = Gauge(
            "corral_provider_up",
            "1 for the provider's current state, 0 for the others.",
            ["provider", "state"],
            registry=registry,
        )
        self.internal_errors = Counter(
            "corral_internal_errors_total",
            "Requests that failed inside Corral (answered 500 with a request id, or cut), by listener.",
            ["listener"],
            registry=registry,
        )
        self.open_connections = Gauge(
            "corral_open_connections",
            "Connections open on the public listener now.",
            registry=registry,
        )
        self.connections_refused = Counter(
            "corral_connections_refused_total",
            "Connections the public listener refused because it was at its connection cap.",
            registry=registry,
        )
        self.invalid_http = Counter(
            "corral_invalid_http_requests_total",
            "Requests the public listener answered 400 because they were not valid HTTP/1.1.",
            registry=registry,
        )
        self.request_timeouts = Counter(
            "corral_request_timeouts_total",
            "Connections closed with 408 because a request's headers or body did not arrive in time, by phase.",
            ["phase"],
            registry=registry,
        )
        # provider -> (model, status) -> its labelled series, looked up once: labels() is costly on the hot path,
        # and remove_provider finds every series of a provider here.
        self._series: dict[str, dict[tuple[str, str], _RequestSeries]] = {}
        self._in_flight: dict[str, Gauge] = {}
        self.archive = ArchiveMetrics(registry)
        self.queue = QueueMetrics(registry)
        self._slot_use: Callable[[], Iterable[SlotUse]] = tuple
        registry.register(_SlotCollector(lambda: self._slot_use()))

    def request_finished(
        self,
        model: str,
        provider: str,
        status: int | str,
        duration_s: float,
        ttft_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        overhead_s: float,
    ) -> None:
        by_label = self._series.setdefault(provider, {})
        series = by_label.get((model, str(status)))
        if series is None:
            series = by_label[(model, str(status))] = self._request_series(model, provider, str(status))
        series.requests.inc()
        series.duration.observe(duration_s)
        if ttft_s is not None:
            if series.ttft is None:
                series.ttft = self.ttft.labels(model, provider)
            series.ttft.observe(ttft_s)
        series.prompt_tokens.inc(prompt_tokens)
        series.completion_tokens.inc(completion_tokens)
        self.overhead.observe(overhead_s)

    def _request_series(self, model: str, provider: str, status: str) -> _RequestSeries:
        return _RequestSeries(
            requests=self.requests.labels(model, provider, status),
            duration=self.duration.labels(model, provider),
            prompt_tokens=self.tokens.labels(model, provider, "prompt"),
            completion_tokens=self.tokens.labels(model, provider, "completion"),
        )

    def in_flight(self, provider: str, delta: int) -> None:
        gauge = self._in_flight.get(provider)
        if gauge is None:
            gauge = self._in_flight[provider] = self.requests_in_flight.labels(provider)
        gauge.inc(delta)

    def provider_state(self, provider: str, state: str) -> None:
        if state not in PROVIDER_STATES:
            raise ValueError(f"unknown provider state {state!r}; expected one of {', '.join(PROVIDER_STATES)}")
        for candidate in PROVIDER_STATES:
            self.provider_up.labels(provider, candidate).set(1 if candidate == state else 0)

    def remove_provider(self, provider: str) -> None:
        """Drop every series labelled with the provider, so a removed provider stops being exported."""
        for model, status in self._series.pop(provider, {}):
            self.requests.remove(model, provider, status)
            self.duration.remove(model, provider)
            self.ttft.remove(model, provider)
            for kind in TOKEN_KINDS:
                self.tokens.remove(model, provider, kind)
        self._in_flight.pop(provider, None)
        self.requests_in_flight.remove(provider)
        for state in PROVIDER_STATES:
            self.provider_up.remove(provider, state)

    def watch_slots(self, slot_use: Callable[[], Iterable[SlotUse]]) -> None:
        """Read each provider's slots and their use when the metrics are scraped: the integral behind them is
        kept by the providers themselves (ProviderRuntime.busy_slot_seconds)."""
        self._slot_use = slot_use

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for GET /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class SlotUse:
    provider: str
    slots: int
    busy_slot_seconds: float


class _SlotCollector(Collector):
    """corral_provider_slots and corral_provider_busy_slot_seconds_total: rate(busy) / slots is how full a
    provider's slots were kept, exactly (not sampled), over any window."""

    def __init__(self, slot_use: Callable[[], Iterable[SlotUse]]) -> None:
        self._slot_use = slot_use

    def collect(self) -> Iterator[Metric]:
        slots = GaugeMetricFamily(
            "corral_provider_slots",
            "Requests each provider serves at once (llama-server's slots, else its max concurrency, else 4).",
            labels=["provider"],
        )
        busy = CounterMetricFamily(
            "corral_provider_busy_slot_seconds",
            "Slot-seconds each provider's slots were held: requests in flight (at most its slots) times the time. "
            "rate() of it over corral_provider_slots is the slots' utilisation.",
            labels=["provider"],
        )
        for use in self._slot_use():
            slots.add_metric([use.provider], use.slots)
            busy.add_metric([use.provider], use.busy_slot_seconds)
        yield slots
        yield busy


class ArchiveMetrics:
    """The request archive's series (gateway_core/archive/): what its writer wrote, dropped and failed to write."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._written = Counter(
            "corral_archive_rows_written_total",
            "Requests written to the archive's month files.",
            registry=registry,
        )
        self._dropped = Counter(
            "corral_archive_rows_dropped_total",
            "Requests not archived because the archive's queue was full (the writer fell behind or was failing).",
            registry=registry,
        )
        self._queue = Gauge(
            "corral_archive_queue_rows",
            "Requests waiting to be written to the archive now.",
            registry=registry,
        )
        self._errors = Counter(
            "corral_archive_write_errors_total",
            "Archive batches that failed to write (kept and tried again; the error is logged and in GET /archive).",
            registry=registry,
        )
        self._batch = Histogram(
            "corral_archive_batch_write_seconds",
            "Time to write one archive batch to a month file (rows, text index and rollups, in one transaction).",
            buckets=ARCHIVE_BATCH_BUCKETS,
            registry=registry,
        )

    def rows_written(self, count: int) -> None:
        self._written.inc(count)

    def rows_dropped(self, count: int) -> None:
        self._dropped.inc(count)

    def write_failed(self) -> None:
        self._errors.inc()

    def batch_written(self, seconds: float) -> None:
        self._batch.observe(seconds)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue's depth when the metrics are scraped, not on every request."""
        self._queue.set_function(depth)


class QueueMetrics:
    """The job queue's series (gateway_core/jobs/): depth, wait and run times, attempts, jobs finished."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._depth = Gauge(
            "corral_queue_depth",
            "Jobs queued now (not running), by public model and key id.",
            ["model", "key"],
            registry=registry,
        )
        self._wait = Histogram(
            "corral_queue_wait_seconds",
            "Time a job waited in the queue before an attempt started, by public model.",
            ["model"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self._run = Histogram(
            "corral_queue_run_seconds",
            "Time one attempt of a job ran, from its start to its answer or failure, by public model.",
            ["model"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self._attempts = Histogram(
            "corral_queue_job_attempts",
            "Attempts a job took, observed when it reached a final state.",
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )
        self._finished = Counter(
            "corral_queue_jobs_finished_total",
            "Jobs that reached a final state, by state (succeeded, failed, cancelled).",
            ["state"],
            registry=registry,
        )

    def queued(self, model: str, key: str, delta: int) -> None:
        self._depth.labels(model, key).inc(delta)

    def attempt_started(self, model: str, waited_s: float) -> None:
        self._wait.labels(model).observe(max(0.0, waited_s))

    def attempt_ended(self, model: str, ran_s: float) -> None:
        self._run.labels(model).observe(max(0.0, ran_s))

    def job_finished(self, state: str, attempts: int) -> None:
        self._finished.labels(state).inc()
        self._attempts.observe(attempts)
