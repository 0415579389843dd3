"""A router model that is loading is waited for, not failed over, through a real corral-core.

The tiny model loads in milliseconds, too fast to catch it loading, so its router runs with a small LD_PRELOAD
shim (built here with gcc) that holds a model instance's fopen() of `slow.gguf` until the test opens a gate
file: llama-server's own load, the same code, only held at its start. Meanwhile the model is "loading" in
llama-server's /models, on corral-core's event stream, and every request for it waits; a lower-priority
provider that serves the same model name gets none of them.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_core.client import CorralClient
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.health import probe
from gateway_core.providers.router import ensure_model_ready, router_model_status
from gateway_core.providers.runtime import ProviderRuntime
from tests.providers.test_router_mode import RouterProcess, router_events, start_router
from tests.testbed.child_processes import stop_process
from tests.testbed.daemon import CorralDaemon
from tests.testbed.requirement import component_unavailable
from tests.testbed.waiting import wait_for_async

pytestmark = pytest.mark.llama_server

GATE_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef FILE *(*fopen_fn)(const char *, const char *);

/* Only a router's model instance (started with --model), never the router itself, which opens the file too. */
static int is_model_instance(void) {
    static int known = -1;
    if (known < 0) {
        char argv[8192];
        FILE *cmdline = ((fopen_fn)dlsym(RTLD_NEXT, "fopen"))("/proc/self/cmdline", "r");
        size_t n = cmdline ? fread(argv, 1, sizeof argv - 1, cmdline) : 0;
        if (cmdline) fclose(cmdline);
        argv[n] = 0;
        known = 0;
        for (size_t i = 0; i < n; i += strlen(argv + i) + 1)
            if (strcmp(argv + i, "--model") == 0) known = 1;
    }
    return known;
}

static void wait_at_gate(const char *path) {
    const char *match = getenv("CORRAL_GATED_OPEN"), *gate = getenv("CORRAL_GATE");
    if (!match || !gate || !path || !strstr(path, match) || !is_model_instance()) return;
    for (int i = 0; i < 60000 && access(gate, F_OK) != 0; i++) usleep(1000); /* a minute at most */
}

FILE *fopen(const char *path, const char *mode) {
    wait_at_gate(path);
    return ((fopen_fn)dlsym(RTLD_NEXT, "fopen"))(path, mode);
}

FILE *fopen64(const char *path, const char *mode) {
    wait_at_gate(path);
    return ((fopen_fn)dlsym(RTLD_NEXT, "fopen64"))(path, mode);
}
"""


@pytest.fixture(scope="module")
def gate_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        component_unavailable("gcc", "no C compiler to build the loading gate; install gcc")
    directory = tmp_path_factory.mktemp("gate")
    (directory / "gate.c").write_text(GATE_SHIM)
    built = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(directory / "gate.so"), str(directory / "gate.c"), "-ldl"],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        component_unavailable("gcc", f"could not build the loading gate: {built.stderr}")
    return directory / "gate.so"


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """Create this file to let the held load go on."""
    return tmp_path / "gate-open"


@pytest.fixture
def router(
    llama_server_binary: Path, tiny_model: Path, tmp_path: Path, gate_shim: Path, gate: Path
) -> Iterator[RouterProcess]:
    models = tmp_path / "models"
    models.mkdir()
    for name in ("alpha", "slow"):
        shutil.copyfile(tiny_model, models / f"{name}.gguf")
    env = {"LD_PRELOAD": str(gate_shim), "CORRAL_GATED_OPEN": "slow.gguf", "CORRAL_GATE": str(gate)}
    started = start_router(llama_server_binary, models, tmp_path / "router.log", env=env)
    yield started
    gate.touch()  # a held instance would otherwise wait out its minute
    stop_process(started.process)


@pytest.mark.asyncio
async def test_requests_for_a_loading_model_wait_for_it_instead_of_failing_over(
    corral_daemon: CorralDaemon, router: RouterProcess, gate: Path, llama_servers: Any
) -> None:
    (spare,) = llama_servers(1, alias="slow")
    corral_daemon.add_provider("router", router.base_url, priority=1)
    corral_daemon.add_provider("spare", spare.base_url)  # serves "slow" too, at a lower priority
    key = corral_daemon.create_key("app")
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    headers = {"authorization": f"Bearer {key}"}
    async with (
        CorralClient(corral_daemon.socket_path) as admin,
        router_events(admin) as seen,
        httpx.AsyncClient(base_url=corral_daemon.base_url, headers=headers, timeout=60) as public,
    ):
        requests = [asyncio.create_task(public.post("/v1/chat/completions", json=body)) for _ in range(3)]
        await wait_for_async(lambda: any(s.get("slow") == "loading" for s in seen), "slow loading on the stream")
        assert router.statuses()["slow"] == "loading"
        assert not any(request.done() for request in requests), "a request did not wait for the load"

        await asyncio.to_thread(gate.touch)
        answers = await asyncio.gather(*requests)

        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-corral-provider"] == "router", "failed over instead of waiting"
        await wait_for_async(lambda: seen[-1].get("slow") == "loaded", "slow loaded on the stream")
        provider = await admin.provider("router")
    assert (provider["errors"], provider["circuit"]) == (0, "closed")
    assert router.log().count("spawning server instance with name=slow") == 1


@pytest.mark.asyncio
async def test_a_wait_past_its_bound_is_a_503_to_retry_while_the_load_goes_on(
    router: RouterProcess, gate: Path
) -> None:
    provider = ProviderRuntime(ProviderConfig(name="router", type="llama-server", base_url=router.base_url))
    try:
        provider.router_models = (await probe(provider.config, provider.session)).router_models
        refused = await ensure_model_ready(provider, "slow", 0.5)
        assert refused is not None
        assert (refused.status, refused.code, refused.headers) == (503, "model_loading", {"retry-after": "5"})
        assert router.statuses()["slow"] == "loading"
        await asyncio.to_thread(gate.touch)
        assert await ensure_model_ready(provider, "slow", 30) is None  # the same load, not a second one
        assert router_model_status(provider, "slow") == "loaded"
        assert router.log().count("spawning server instance with name=slow") == 1
    finally:
        await provider.close()
