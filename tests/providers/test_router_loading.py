"""`ensure_model_ready`, what the pipeline asks before it sends a request to a router model that is not known to
be loaded, against a real router-mode llama-server: however many requests wait, one load; a sleeping model is
sent at once; a model whose GGUF cannot load is a 503 with llama-server's reason, tried again only after a
pause; and the requests for it through corral-core never count against the router or open its circuit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway_core.contracts.views import RouterModelStatus
from gateway_core.providers import router as router_mode
from gateway_core.providers import router_listing
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.health import probe
from gateway_core.providers.runtime import ProviderRuntime
from tests.providers.test_router_mode import RouterProcess, start_router
from tests.testbed.child_processes import stop_process
from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server


@pytest.fixture
def models_dir(tmp_path: Path, tiny_model: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / "alpha.gguf").write_bytes(tiny_model.read_bytes())
    (directory / "broken.gguf").write_bytes(b"not a GGUF file")  # llama-server: "invalid magic characters"
    return directory


@pytest.fixture
def router(llama_server_binary: Path, models_dir: Path, tmp_path: Path) -> Iterator[RouterProcess]:
    started = start_router(llama_server_binary, models_dir, tmp_path / "router.log")
    yield started
    stop_process(started.process)


@pytest_asyncio.fixture
async def provider(router: RouterProcess) -> AsyncIterator[ProviderRuntime]:
    """The router as the registry would hold it, probed once."""
    runtime = ProviderRuntime(ProviderConfig(name="router", type="llama-server", base_url=router.base_url))
    result = await probe(runtime.config, runtime.session)
    assert result.router_models is not None, result
    runtime.router_models = result.router_models
    yield runtime
    await runtime.close()


@pytest.mark.asyncio
async def test_twenty_requests_for_an_unloaded_model_wait_on_one_load(
    provider: ProviderRuntime, router: RouterProcess
) -> None:
    assert router_mode.router_model_status(provider, "alpha") == "unloaded"
    answers = await asyncio.gather(*(router_mode.ensure_model_ready(provider, "alpha", 30) for _ in range(20)))
    assert answers == [None] * 20
    # llama-server's log is written by a thread of its own: the line may land a moment after the load is done.
    wait_for(lambda: router.loads() >= 1, "the router's log to show the load")
    assert router.loads() == 1
    assert router_mode.router_model_status(provider, "alpha") == "loaded"
    assert router.statuses()["alpha"] == "loaded"


@pytest.mark.asyncio
async def test_a_model_that_cannot_load_is_a_503_with_llama_servers_reason_and_is_not_retried_at_once(
    provider: ProviderRuntime, router: RouterProcess
) -> None:
    refused = await router_mode.ensure_model_ready(provider, "broken", 30)
    assert refused is not None
    assert (refused.status, refused.code) == (503, "model_load_failed")
    assert "'broken'" in refused.message
    assert "exited with code 1" in refused.message
    assert router_mode.router_model_status(provider, "broken") == "failed"
    wait_for(lambda: router.loads() >= 1, "the router's log to show the failed load")  # its own thread writes it
    tried = router.loads()
    again = await router_mode.ensure_model_ready(provider, "broken", 30)
    assert again is not None
    assert again.code == "model_load_failed"
    assert router.loads() == tried  # within FAILED_RETRY_S it is refused without another attempt


@pytest.mark.asyncio
async def test_a_request_for_a_loaded_or_sleeping_model_goes_at_once(provider: ProviderRuntime) -> None:
    await router_mode.load_model(provider, "alpha", 30)
    await provider.close()  # from here any request to the router would raise: none is made
    serving: tuple[RouterModelStatus, ...] = ("loaded", "sleeping")
    for status in serving:
        provider.router_models = [{"id": "alpha", "status": status, "detail": ""}]
        assert await router_mode.ensure_model_ready(provider, "alpha", 0.001) is None


def test_the_router_s_capacity_is_models_max_models_slots() -> None:
    def entry(*args: str) -> dict[str, Any]:
        return {"id": "m", "status": {"value": "unloaded", "args": ["llama-server", *args]}}

    assert router_listing.argv_slots(entry("--parallel", "3")) == 3
    assert router_listing.argv_slots(entry("-np", "5")) == 5
    assert router_listing.argv_slots(entry()) is None  # LLAMA_ARG_N_PARALLEL, inherited, or llama-server's auto
    slots = {"a": 2, "b": 6, "c": 1}
    assert router_listing.router_capacity(slots, 1) == 6
    assert router_listing.router_capacity(slots, 2) == 8
    assert router_listing.router_capacity(slots, 0) == 9  # no limit: all of them


def test_requests_for_a_model_that_cannot_load_are_503s_that_never_open_the_router_s_circuit(
    corral_daemon: CorralDaemon, router: RouterProcess
) -> None:
    corral_daemon.add_provider("router", router.base_url)
    key = corral_daemon.create_key("app")
    body = {"model": "broken", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with httpx.Client(base_url=corral_daemon.base_url, headers={"authorization": f"Bearer {key}"}) as public:
        for _ in range(8):
            response = public.post("/v1/chat/completions", json=body, timeout=30)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "model_load_failed"
            assert "exited with code 1" in response.json()["error"]["message"]
        working = public.post("/v1/chat/completions", json={**body, "model": "alpha"}, timeout=30)
        assert working.status_code == 200, working.text
    provider = corral_daemon.admin_call("GET", "/providers/router").json()
    assert (provider["errors"], provider["circuit"], provider["state"]) == (0, "closed", "ready")
