"""The provider registry without a daemon or a network: persistence, routing candidates, probing and slots.

The registry's one piece of I/O, asking a provider for its health, is its `prober`; here a scripted one
answers as a provider would, so these tests need no socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gateway_core.contracts.errors import GatewayError
from gateway_core.events import Event, EventBus
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.health import ProbeResult
from gateway_core.providers.registry import ProviderRegistry
from gateway_core.store.config_store import ConfigStore
from tests.fakes.clock import FakeClock

READY_TINY = ProbeResult("ready", "ok", models={"tiny": "tiny.gguf"}, capacity=2)


class ScriptedProber:
    """Answers each provider's probe with what the test set for it (down until then); counts the probes."""

    def __init__(self) -> None:
        self.answers: dict[str, ProbeResult] = {}
        self.probes: list[str] = []

    async def __call__(self, config: ProviderConfig, session: aiohttp.ClientSession) -> ProbeResult:
        self.probes.append(config.name)
        return self.answers.get(config.name, ProbeResult("down", f"cannot reach {config.base_url}"))


def llama(name: str, **fields: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"name": name, "type": "llama-server", "base_url": f"http://{name}.invalid:8080", **fields}
    )


def drain(queue: asyncio.Queue[Event | None]) -> list[Event]:
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        assert event is not None
        events.append(event)
    return events


@pytest.fixture
def config(tmp_path: Path) -> Iterator[ConfigStore]:
    store = ConfigStore(tmp_path / "config.json")
    yield store
    store.close()


@pytest.fixture
def prober() -> ScriptedProber:
    return ScriptedProber()


@pytest.fixture
def events() -> EventBus:
    return EventBus()


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest_asyncio.fixture
async def registry(
    config: ConfigStore, metrics: GatewayMetrics, events: EventBus, prober: ScriptedProber
) -> AsyncIterator[ProviderRegistry]:
    registry = ProviderRegistry(config, metrics, events, prober=prober)
    yield registry
    await registry.close()


def in_flight_metric(metrics: GatewayMetrics, provider: str) -> float | None:
    return metrics.registry.get_sample_value("corral_requests_in_flight", {"provider": provider})


# -- persistence ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_provider_put_is_saved_probed_and_restored_by_a_new_registry(registry, config, metrics, events, prober):
    prober.answers["gpu0"] = READY_TINY

    runtime = await registry.put(llama("gpu0", priority=5))

    assert (runtime.health, runtime.models, runtime.capacity) == ("ready", {"tiny": "tiny.gguf"}, 2)
    restored = ProviderRegistry(config, metrics, events, prober=prober)
    assert [p.config for p in restored] == [runtime.config]
    await restored.close()


@pytest.mark.asyncio
async def test_removing_a_provider_deletes_it_from_the_file_and_the_metrics_and_says_so(
    registry, config, metrics, events, prober
):
    prober.answers["gpu0"] = READY_TINY
    await registry.put(llama("gpu0"))
    queue = events.subscribe()

    assert await registry.remove("gpu0") is True

    assert "gpu0" not in registry
    assert config.all("providers") == []
    assert metrics.registry.get_sample_value("corral_provider_up", {"provider": "gpu0", "state": "ready"}) is None
    assert [(e.kind, e.data) for e in drain(queue)] == [("provider.removed", {"name": "gpu0"})]
    assert await registry.remove("gpu0") is False


@pytest.mark.asyncio
async def test_adding_a_provider_under_a_name_in_use_is_refused_with_409(registry):
    await registry.add(llama("gpu0"))

    with pytest.raises(GatewayError) as refused:
        await registry.add(llama("gpu0", priority=1))

    assert (refused.value.status, refused.value.code, refused.value.param) == (409, "duplicate_name", "name")
    assert registry.require("gpu0").config.priority == 0


@pytest.mark.asyncio
async def test_an_update_merges_into_the_saved_configuration_and_cannot_rename(registry, config):
    runtime = await registry.add(llama("gpu0", weight=3))

    updated = await registry.update(runtime, {"priority": 7})
    with pytest.raises(GatewayError) as refused:
        await registry.update(updated, {"name": "gpu1"})

    assert (updated.config.priority, updated.config.weight) == (7, 3)
    assert config.all("providers")[0]["priority"] == 7
    assert (refused.value.status, refused.value.param) == (400, "name")


@pytest.mark.asyncio
async def test_require_names_the_provider_it_could_not_find(registry):
    with pytest.raises(GatewayError) as missing:
        registry.require("nowhere")

    assert (missing.value.status, missing.value.code) == (404, "provider_not_found")


# -- routing candidates ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_only_enabled_providers_that_list_a_model_serve_it(registry, prober):
    for name in ("gpu0", "gpu1", "off"):
        prober.answers[name] = READY_TINY
    await registry.put(llama("gpu0"))
    await registry.put(llama("gpu1", models={"qwen": "qwen.gguf"}))
    await registry.put(llama("off", enabled=False))

    assert [p.name for p in registry.serving("tiny")] == ["gpu0"]
    assert registry.models() == {"tiny": ["gpu0"], "qwen": ["gpu1"]}


@pytest.mark.asyncio
async def test_a_model_nobody_lists_is_not_found_once_every_provider_has_listed_its_models(registry, prober):
    prober.answers["gpu0"] = READY_TINY
    await registry.put(llama("gpu0"))

    error = registry.unknown_model("qwen")

    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


@pytest.mark.asyncio
async def test_a_model_is_retry_later_while_a_provider_has_not_listed_its_models(registry):
    await registry.put(llama("loading"))  # the scripted prober finds it down: no models discovered

    error = registry.unknown_model("tiny")

    assert (error.status, error.code, error.headers) == (503, "no_provider_ready", {"retry-after": "2"})
    assert "loading" in error.message


# -- probing --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_change_of_health_is_published_and_an_unchanged_probe_is_not(registry, events, prober):
    runtime = await registry.put(llama("gpu0"))
    queue = events.subscribe()

    await registry.probe_once(runtime)  # down again: nothing new
    prober.answers["gpu0"] = READY_TINY
    await registry.probe_once(runtime)

    published = drain(queue)
    assert [(e.kind, e.data["state"]) for e in published] == [("provider", "ready")]


@pytest.mark.asyncio
async def test_start_probes_every_saved_provider_before_it_returns(config, metrics, events, prober):
    config.put("providers", "name", llama("gpu0").stored())
    config.put("providers", "name", llama("gpu1").stored())
    prober.answers["gpu0"] = READY_TINY
    registry = ProviderRegistry(config, metrics, events, prober=prober)

    await registry.start()

    assert sorted(prober.probes) == ["gpu0", "gpu1"]
    assert registry.require("gpu0").state == "ready"
    assert registry.ready_count() == 1
    await registry.close()


@pytest.mark.asyncio
async def test_a_deployment_is_routed_as_a_llama_server_provider_of_its_name(registry, prober):
    class Deployment:
        name = "qwen-7b"
        base_url = "http://127.0.0.1:8081"

    prober.answers["qwen-7b"] = ProbeResult("ready", "ok", models={"whatever": "whatever"})

    await registry.register_deployment(Deployment())

    runtime = registry.require("qwen-7b")
    assert (runtime.config.type, runtime.config.base_url) == ("llama-server", "http://127.0.0.1:8081")
    assert runtime.models == {"qwen-7b": "qwen-7b"}, "the deployment's public model is its name"
    await registry.unregister_deployment("qwen-7b")
    assert "qwen-7b" not in registry


@pytest.mark.asyncio
async def test_a_saved_provider_test_probes_it_now(registry, prober):
    await registry.put(llama("gpu0"))
    prober.answers["gpu0"] = READY_TINY

    answer = await registry.test("gpu0")

    assert answer == {"name": "gpu0", "health": "ready", "detail": "ok", "models": {"tiny": "tiny.gguf"}, "capacity": 2}


@pytest.mark.asyncio
async def test_an_unsaved_configuration_is_probed_without_being_saved(registry, config, prober):
    prober.answers["new"] = READY_TINY

    answer = await registry.test_unsaved(llama("new"))

    assert answer["health"] == "ready"
    assert "new" not in registry
    assert config.all("providers") == []


# -- slots ----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_slot_counts_in_the_providers_load_and_metric_until_released(registry, metrics, prober):
    prober.answers["gpu0"] = READY_TINY
    provider = await registry.put(llama("gpu0"))

    slot = registry.occupy(provider)
    held = (provider.in_flight, in_flight_metric(metrics, "gpu0"), provider.load)
    slot.release()

    assert held == (1, 1.0, 0.5)
    assert (provider.in_flight, in_flight_metric(metrics, "gpu0")) == (0, 0.0)
    assert slot.released


@pytest.mark.asyncio
async def test_releasing_a_slot_twice_frees_it_once(registry, metrics):
    provider = await registry.put(llama("gpu0"))
    first, second = registry.occupy(provider), registry.occupy(provider)

    first.release()
    first.release()

    assert provider.in_flight == 1
    assert in_flight_metric(metrics, "gpu0") == 1.0
    second.release()
    assert provider.in_flight == 0


@pytest.mark.asyncio
async def test_releasing_a_slot_wakes_a_request_waiting_for_one(registry):
    provider = await registry.put(llama("gpu0", max_concurrency=1))
    slot = registry.occupy(provider)
    waiting = asyncio.ensure_future(registry.slot_released.wait())

    slot.release()

    await asyncio.wait_for(waiting, timeout=5)
    assert not registry.slot_released.is_set(), "the next waiter waits for the next release"


@pytest.mark.asyncio
async def test_a_providers_busy_slot_seconds_integrate_its_requests_in_flight_within_its_slots(
    config, metrics, events, prober
):
    clock = FakeClock()
    registry = ProviderRegistry(config, metrics, events, prober=prober, clock=clock)
    prober.answers["gpu0"] = READY_TINY  # two slots
    provider = await registry.put(llama("gpu0"))
    first = registry.occupy(provider)
    clock.advance(1.0)  # one slot held for 1 s
    more = [registry.occupy(provider), registry.occupy(provider)]
    clock.advance(2.0)  # three in flight, but only its two slots count, for 2 s
    for slot in more:
        slot.release()
    clock.advance(0.5)  # one again, still held as this is read
    while_held = provider.busy_slot_seconds()
    first.release()
    clock.advance(10.0)  # idle

    assert while_held == pytest.approx(1.0 + 4.0 + 0.5)
    assert provider.busy_slot_seconds() == pytest.approx(5.5)
    assert registry.require("gpu0").summary()["busy_slot_seconds"] == pytest.approx(5.5)
    sample = metrics.registry.get_sample_value
    assert sample("corral_provider_busy_slot_seconds_total", {"provider": "gpu0"}) == pytest.approx(5.5)
    assert sample("corral_provider_slots", {"provider": "gpu0"}) == 2
    await registry.remove("gpu0")
    assert sample("corral_provider_slots", {"provider": "gpu0"}) is None
    await registry.close()
