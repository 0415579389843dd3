"""A per-provider circuit breaker: open after N consecutive failures, half-open after a cooldown."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway_core.contracts.views import CircuitState


class CircuitBreaker:
    def __init__(self, threshold: int = 3, cooldown_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def allows_request(self) -> bool:
        """Closed: yes. Open: no. Half-open: one trial request at a time."""
        state = self.state
        if state == "closed":
            return True
        return state == "half_open" and not self._trial_in_flight

    def on_attempt(self) -> None:
        if self.state == "half_open":
            self._trial_in_flight = True

    def record_success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self.failures += 1
        self._trial_in_flight = False
        if self._opened_at is not None or self.failures >= self.threshold:
            self._opened_at = self._clock()  # a failed trial re-opens for a full cooldown
