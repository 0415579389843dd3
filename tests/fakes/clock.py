"""A clock that moves only when a test says so: key expiry and rate-limit windows without sleeping."""

from __future__ import annotations

import time


class FakeClock:
    """Implements `gateway_core.clock.Clock`. Starts at the real time, so values read from the system clock
    elsewhere (a timestamp in a stored record, say) stay comparable; from then on only `advance` moves it."""

    def __init__(self) -> None:
        self._wall = time.time()
        self._monotonic = time.monotonic()

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._wall += seconds
        self._monotonic += seconds
