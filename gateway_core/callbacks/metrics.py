"""The callback deliveries' Prometheus series, registered in the gateway's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

ATTEMPT_RESULTS = ("delivered", "gone", "http_error", "no_answer", "refused", "unsigned")
FINAL_OUTCOMES = ("delivered", "gone", "dead_lettered")


class CallbackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "corral_callback_attempts_total",
            "Callback attempts, by result: delivered (2xx), gone (410), http_error (another status), no_answer "
            "(timeout or connection error), refused (the SSRF guard), unsigned (the key has no webhook secret).",
            ["result"],
            registry=registry,
        )
        self.deliveries = Counter(
            "corral_callback_deliveries_total",
            "Callback deliveries that ended, by outcome: delivered, gone (410) or dead_lettered (all attempts failed).",
            ["outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "corral_callback_pending",
            "Callback deliveries waiting for their next attempt or in flight.",
            registry=registry,
        )
        self.dead_letters = Gauge(
            "corral_callback_dead_letters",
            "Callback deliveries dead now (dead-lettered or gone), until redelivered.",
            registry=registry,
        )
        for result in ATTEMPT_RESULTS:
            self.attempts.labels(result)
        for outcome in FINAL_OUTCOMES:
            self.deliveries.labels(outcome)
