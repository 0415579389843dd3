"""The balancer's choices, on provider runtimes without any network."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway_core.gateway.balancer import plan
from gateway_core.providers.circuit import CircuitBreaker
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.runtime import ProviderRuntime


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make():
    def runtime(name: str, **fields) -> ProviderRuntime:
        config = ProviderConfig(name=name, type="llama-server", base_url="http://127.0.0.1:9", **fields)
        return ProviderRuntime(config, health="ready", discovered_capacity=4)

    return runtime


def test_equal_idle_providers_take_turns(make):
    providers = [make("a"), make("b"), make("c")]

    firsts = [plan(providers)[0].name for _ in range(9)]

    assert Counter(firsts) == {"a": 3, "b": 3, "c": 3}


def test_weights_share_idle_traffic_in_proportion(make):
    providers = [make("big", weight=3), make("small", weight=1)]

    firsts = Counter(plan(providers)[0].name for _ in range(400))

    assert firsts == {"big": 300, "small": 100}


def test_the_least_loaded_relative_to_capacity_goes_first(make):
    busy, idle = make("busy"), make("idle")
    busy.in_flight = 3
    idle.in_flight = 1

    assert [p.name for p in plan([busy, idle])] == ["idle", "busy"]


def test_lower_priority_tiers_are_only_fallbacks(make):
    primary, backup = make("primary", priority=5), make("backup", priority=0)
    primary.in_flight = 4  # fully loaded, yet still preferred over a lower tier

    assert [p.name for p in plan([backup, primary])] == ["primary", "backup"]


def test_unhealthy_disabled_and_saturated_providers_are_left_out(make):
    loading = make("loading")
    loading.health = "loading"
    disabled = make("disabled", enabled=False)
    full = make("full", max_concurrency=1)
    full.in_flight = 1
    ok = make("ok")

    assert [p.name for p in plan([loading, disabled, full, ok])] == ["ok"]
    assert full.saturated()


def test_circuit_opens_after_threshold_then_lets_one_trial_through_after_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(3):
        assert breaker.allows_request()
        breaker.record_failure()

    assert breaker.state == "open"
    assert not breaker.allows_request()
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allows_request()
    breaker.on_attempt()
    assert not breaker.allows_request(), "only one trial at a time while half-open"
    breaker.record_success()
    assert breaker.state == "closed"


def test_a_failed_trial_reopens_the_circuit_for_a_full_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    breaker.on_attempt()

    breaker.record_failure()

    assert breaker.state == "open"
    clock.now += 9
    assert breaker.state == "open"
