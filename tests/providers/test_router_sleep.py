"""A router started with `--sleep-idle-seconds`: a model idle that long is "sleeping", Corral's probe shows it so
without waking it (it never asks a model's /slots, which would), and a request goes to it at once and wakes it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.health import probe
from gateway_core.providers.router import ensure_model_ready, load_model, router_model_status
from gateway_core.providers.runtime import ProviderRuntime
from tests.providers.test_router_mode import RouterProcess, start_router
from tests.testbed.child_processes import stop_process
from tests.testbed.waiting import wait_for_async

pytestmark = pytest.mark.llama_server


@pytest.fixture
def router(llama_server_binary: Path, tiny_model: Path, tmp_path: Path) -> Iterator[RouterProcess]:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(tiny_model, models / "alpha.gguf")
    started = start_router(llama_server_binary, models, tmp_path / "router.log", "--sleep-idle-seconds", "1")
    yield started
    stop_process(started.process)


@pytest_asyncio.fixture
async def provider(router: RouterProcess) -> AsyncIterator[ProviderRuntime]:
    runtime = ProviderRuntime(ProviderConfig(name="router", type="llama-server", base_url=router.base_url))
    yield runtime
    await runtime.close()


async def probed(provider: ProviderRuntime) -> str | None:
    result = await probe(provider.config, provider.session)
    provider.router_models = result.router_models
    return router_model_status(provider, "alpha")


@pytest.mark.asyncio
async def test_a_sleeping_model_is_shown_without_waking_it_and_a_request_goes_to_it_at_once(
    provider: ProviderRuntime, router: RouterProcess
) -> None:
    assert await probed(provider) == "unloaded"
    await load_model(provider, "alpha", 30)
    assert await probed(provider) == "loaded"  # the probe measures its slots now, once

    async def asleep() -> bool:
        return await probed(provider) == "sleeping"

    await wait_for_async(asleep, "alpha to fall asleep", interval_s=0.2)
    for _ in range(3):  # probing again and again leaves it asleep
        assert await probed(provider) == "sleeping"
    assert router.statuses()["alpha"] == "sleeping"

    assert await ensure_model_ready(provider, "alpha", 30) is None
    body = {"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with httpx.AsyncClient(base_url=router.base_url, timeout=30) as client:
        answer = await client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert router.log().count("spawning server instance with name=alpha") == 1  # woken, not loaded again
