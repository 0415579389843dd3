"""A provider as the gateway sees it while running: health, capacity, load and its connection pool."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from gateway_core.contracts.views import Health, ProviderState, ProviderView, RouterModelView

from .circuit import CircuitBreaker
from .config import ProviderConfig
from .upstream import make_session

DEFAULT_CAPACITY = 4  # used until a provider tells us better (llama-server's /props total_slots)


@dataclass(eq=False)
class ProviderRuntime:
    config: ProviderConfig
    health: Health = "unknown"
    health_detail: str = "not probed yet"
    discovered_models: dict[str, str] = field(default_factory=dict)
    discovered_capacity: int | None = None
    discovered_media: frozenset[str] | None = None  # None until a probe says (llama-server's /props modalities)
    in_flight: int = 0  # changed only by take_slot and free_slot, which keep the slot-seconds
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    # Smooth weighted round-robin state, for breaking ties between equally loaded providers.
    rotation: float = 0.0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    requests: int = 0
    errors: int = 0
    last_probe_at: float | None = None
    router_models: list[RouterModelView] | None = None  # a router-mode llama-server's models; None: not a router
    # Told when a router's model statuses change outside a probe (a load or unload): the registry publishes it.
    router_listener: Callable[[ProviderRuntime], None] | None = field(default=None, repr=False)
    monotonic: Callable[[], float] = time.monotonic
    # Slot-seconds held (requests in flight, within capacity, times how long) up to `_busy_at`.
    _busy_slot_s: float = 0.0
    _busy_at: float = 0.0
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    @property
    def session(self) -> aiohttp.ClientSession:
        """Its keep-alive pool, opened on first use (aiohttp binds it to the running event loop)."""
        if self._session is None:
            self._session = make_session(self.config)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def models(self) -> dict[str, str]:
        """Public model name -> upstream name: configured ones win over discovered ones."""
        return self.config.models or self.discovered_models

    @property
    def capacity(self) -> int:
        if self.discovered_capacity:
            return self.discovered_capacity
        return self.config.max_concurrency or DEFAULT_CAPACITY

    def take_slot(self) -> None:
        self._tally()
        self.in_flight += 1

    def free_slot(self) -> None:
        self._tally()
        self.in_flight -= 1

    @property
    def last_busy_mono(self) -> float | None:
        """When a request last began or ended on it (monotonic); None when none ever has."""
        return self._busy_at or None

    def busy_slot_seconds(self) -> float:
        """Slot-seconds its slots have been held since it was added (or its configuration last changed, which
        makes a new runtime): the integral of its requests in flight (at
        most its capacity) over time, exact rather than sampled. Its rate over slots is its slots' utilisation."""
        return self._busy_slot_s + min(self.in_flight, self.capacity) * (self.monotonic() - self._busy_at)

    def _tally(self) -> None:
        now = self.monotonic()
        self._busy_slot_s += min(self.in_flight, self.capacity) * (now - self._busy_at)
        self._busy_at = now

    def accepts(self, media: Iterable[str]) -> bool:
        """Whether it takes these input kinds; a provider that has not said what it takes is given the request."""
        known = self.discovered_media
        return known is None or all(kind in known for kind in media)

    @property
    def draining(self) -> bool:
        """Drained for maintenance: it takes nothing new, and what it took runs to its end."""
        return self.config.draining

    @property
    def state(self) -> ProviderState:
        """What operators see: draining or drained (the operator's drain, whatever the health says: `enabled` is
        in the view on its own), disabled, ready, loading, down, circuit_open or unknown."""
        if self.config.draining:
            return "draining" if self.in_flight else "drained"
        if not self.config.enabled:
            return "disabled"
        if self.health == "ready" and self.breaker.state == "open":
            return "circuit_open"
        return self.health

    def routable(self) -> bool:
        if (
            not self.config.enabled
            or self.config.draining
            or self.health != "ready"
            or not self.breaker.allows_request()
        ):
            return False
        limit = self.config.max_concurrency
        return limit is None or self.in_flight < limit

    def saturated(self) -> bool:
        """Healthy, but at its max concurrency: worth waiting for rather than refusing (a draining one is not)."""
        limit = self.config.max_concurrency
        return (
            self.config.enabled
            and not self.config.draining
            and self.health == "ready"
            and limit is not None
            and self.in_flight >= limit
        )

    @property
    def load(self) -> float:
        return self.in_flight / self.capacity

    def record(self, duration_s: float, ok: bool, *, its_fault: bool = True) -> None:
        """Count a finished request; one that did not finish through no fault of the provider (the client left,
        an operator cancelled it) is not an error."""
        self.requests += 1
        if ok:
            self.latencies.append(duration_s)
        elif its_fault:
            self.errors += 1

    def latency_p50(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[len(ordered) // 2]

    def summary(self) -> ProviderView:
        return {
            **self.config.public_view(),
            "state": self.state,
            "health_detail": self.health_detail,
            "models": self.models,
            "capacity": self.capacity,
            "in_flight": self.in_flight,
            "busy_slot_seconds": self.busy_slot_seconds(),
            "circuit": self.breaker.state,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else 0.0,
            "latency_p50_s": self.latency_p50(),
            "last_probe_at": self.last_probe_at,
            "router_models": self.router_models,
        }

    def set_router_models(self, models: list[RouterModelView]) -> None:
        """A router's models as it listed them just now; a change is told to `router_listener`."""
        if models != self.router_models:
            self.router_models = models
            if self.router_listener is not None:
                self.router_listener(self)

    def mark_probed(self, at: float) -> None:
        self.last_probe_at = at
