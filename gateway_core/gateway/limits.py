"""Per-API-key rate limits kept in memory: requests per minute, tokens per minute and requests in flight.

Everything runs on the event loop's single thread, so there are no locks; nothing here sleeps or does I/O.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from gateway_core.contracts.views import KeyUsage

WINDOW_S = 60.0
BUCKET_S = 0.1

LimitName = Literal["rpm", "tpm", "concurrency"]


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's limits; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")


class LimitExceeded(Exception):
    """A request refused by one of its key's limits; the gateway answers 429 with Retry-After."""

    def __init__(self, limit: LimitName, key_name: str, retry_after_s: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.key_name = key_name
        self.retry_after_s = retry_after_s
        self.message = message


class _Window:
    """A sliding window of (timestamp, amount) entries with a running total.

    Amounts added within BUCKET_S of each other share one entry, stamped with the latest of them, so a window
    holds at most WINDOW_S / BUCKET_S entries at any request rate (one per request took ~40 MB per busy key),
    and an entry leaves the window no earlier than its latest request would have: limits never loosen.
    """

    __slots__ = ("bucket_start", "entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0
        self.bucket_start = -math.inf

    def add(self, now: float, amount: int) -> None:
        entries = self.entries
        if entries and now - self.bucket_start < BUCKET_S:
            entries[-1] = (now, entries[-1][1] + amount)
        else:
            entries.append((now, amount))
            self.bucket_start = now
        self.total += amount

    def evict(self, now: float) -> None:
        cutoff = now - WINDOW_S
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            self.total -= entries.popleft()[1]

    def frees_at(self, limit: int) -> float:
        """The time at which the total drops below limit (>= 1), if nothing more is added."""
        remaining = self.total
        for timestamp, amount in self.entries:
            remaining -= amount
            if remaining < limit:
                return timestamp + WINDOW_S
        return 0.0  # the total is already below limit


class _KeyState:
    __slots__ = ("in_flight", "requests", "tokens")

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = _Window()
        self.tokens = _Window()

    def evict(self, now: float) -> None:
        self.requests.evict(now)
        self.tokens.evict(now)


class Lease:
    """One admitted request: record its tokens, then release its concurrency slot (once)."""

    __slots__ = ("_clock", "_released", "_state")

    def __init__(self, state: _KeyState, clock: Callable[[], float]) -> None:
        self._state = state
        self._clock = clock
        self._released = False

    def add_tokens(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"token count must not be negative, not {n}")
        if n:
            self._state.tokens.add(self._clock(), n)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._state.in_flight -= 1

    @property
    def released(self) -> bool:
        return self._released

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _retry_after(now: float, frees_at: float) -> int:
    # Round to the microsecond first, so float noise such as 12.000000001 does not become 13.
    return max(1, math.ceil(round(frees_at - now, 6)))


class RateLimiter:
    """Admits or refuses requests per key, with 60-second sliding windows over requests and tokens."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}

    def acquire(self, key_id: str, key_name: str, limits: KeyLimits) -> Lease:
        """Admit one request for the key or raise LimitExceeded: concurrency, then rpm, then tpm."""
        now = self._clock()
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState()
        state.evict(now)
        _check_concurrency(state, key_name, limits.max_concurrency)
        _check_rpm(state, key_name, limits.rpm, now)
        _check_tpm(state, key_name, limits.tpm, now)
        state.requests.add(now, 1)
        state.in_flight += 1
        return Lease(state, self._clock)

    def forget(self, key_id: str) -> None:
        """Drop a removed key's state; leases still held on it release harmlessly."""
        self._keys.pop(key_id, None)

    def usage(self, key_id: str) -> KeyUsage:
        """Requests in flight, and requests and tokens in the last minute, for the admin API."""
        state = self._keys.get(key_id)
        if state is None:
            return {"in_flight": 0, "requests_last_minute": 0, "tokens_last_minute": 0}
        state.evict(self._clock())
        return {
            "in_flight": state.in_flight,
            "requests_last_minute": state.requests.total,
            "tokens_last_minute": state.tokens.total,
        }


def _check_concurrency(state: _KeyState, key_name: str, limit: int | None) -> None:
    if limit is not None and state.in_flight >= limit:
        # A slot frees when any request in flight finishes, which no clock can predict.
        raise LimitExceeded(
            "concurrency",
            key_name,
            1,
            f"key '{key_name}' is at its limit of {limit} requests in flight; retry after 1 s",
        )


def _check_rpm(state: _KeyState, key_name: str, limit: int | None, now: float) -> None:
    if limit is not None and state.requests.total >= limit:
        retry = _retry_after(now, state.requests.frees_at(limit))
        raise LimitExceeded(
            "rpm", key_name, retry, f"key '{key_name}' is over its {limit} requests per minute; retry after {retry} s"
        )


def _check_tpm(state: _KeyState, key_name: str, limit: int | None, now: float) -> None:
    if limit is not None and state.tokens.total >= limit:
        retry = _retry_after(now, state.tokens.frees_at(limit))
        raise LimitExceeded(
            "tpm", key_name, retry, f"key '{key_name}' is over its {limit} tokens per minute; retry after {retry} s"
        )
