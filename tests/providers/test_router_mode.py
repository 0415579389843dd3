"""llama-server's router mode behind a real corral-core: one llama-server started with `--models-dir` (two
copies of the tiny GGUF, alpha and beta) and `--models-max 1`, so that serving one model unloads the other.

Both models are routed by their names; the provider's capacity is what the router can run (one model's two
slots), not "?"; each model's status is in the admin API and on the event stream; operators load and unload
models through the admin API (an unload waits for what runs on the model: llama-server's own would cut it);
and requests alternating between the two models while llama-server swaps them all succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_core.client import CorralClient, CorralError
from gateway_core.contracts.views import RouterModelView
from tests.testbed.child_processes import die_with_parent, stop_process
from tests.testbed.daemon import CorralDaemon
from tests.testbed.ports import free_port
from tests.testbed.waiting import wait_for, wait_for_async

pytestmark = pytest.mark.llama_server

PROMPT = [{"role": "user", "content": "hi"}]
# Context shift lets the tiny model generate past its context: 8,000 tokens take it a second or more here.
LONG_STREAM = {"messages": PROMPT, "stream": True, "max_tokens": 8000, "ignore_eos": True}


@dataclass
class RouterProcess:
    """A router-mode llama-server: no -m, every GGUF of `models_dir` a model named by its file stem."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def loads(self) -> int:
        """How many model instances llama-server has started (each load of a model is one)."""
        return self.log().count("spawning server instance with name=")

    def statuses(self) -> dict[str, str]:
        listed = httpx.get(self.base_url + "/models", timeout=5).json()["data"]
        return {entry["id"]: entry["status"]["value"] for entry in listed}


def start_router(
    binary: Path, models_dir: Path, log_path: Path, *extra: str, env: dict[str, str] | None = None
) -> RouterProcess:
    port = free_port()
    command = [str(binary), "--models-dir", str(models_dir), "--models-max", "1", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--parallel", "2", "--threads", "1", "--context-shift", *extra]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
            env={**os.environ, **(env or {})},
        )
    router = RouterProcess(process, port, log_path)

    def answers() -> bool:
        assert process.poll() is None, f"the router exited:\n{router.log()[-2000:]}"
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(router.base_url + "/health", timeout=1).status_code == 200
        return False

    wait_for(answers, "the router's /health")
    return router


@pytest.fixture
def models_dir(tmp_path: Path, tiny_model: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    for name in ("alpha", "beta"):
        shutil.copyfile(tiny_model, directory / f"{name}.gguf")
    return directory


@pytest.fixture
def router(llama_server_binary: Path, models_dir: Path, tmp_path: Path) -> Iterator[RouterProcess]:
    started = start_router(llama_server_binary, models_dir, tmp_path / "router.log")
    yield started
    stop_process(started.process)  # SIGTERM: the router stops its model instances first


@pytest.fixture
def routed(corral_daemon: CorralDaemon, router: RouterProcess) -> tuple[CorralDaemon, RouterProcess, str]:
    """corral-core with the router as provider "router", and an app's key."""
    corral_daemon.add_provider("router", router.base_url)
    return corral_daemon, router, corral_daemon.create_key("app")


def view(daemon: CorralDaemon) -> dict[str, Any]:
    response = daemon.admin_call("GET", "/providers/router")
    assert response.status_code == 200, response.text
    return response.json()


def statuses(models: list[RouterModelView] | None) -> dict[str, str]:
    assert models is not None, "the provider is not seen as a router"
    return {model["id"]: model["status"] for model in models}


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": PROMPT, "max_tokens": 4}


@contextlib.asynccontextmanager
async def router_events(admin: CorralClient) -> AsyncIterator[list[dict[str, str]]]:
    """The router's model statuses in each "provider" event for it while the block runs."""
    seen: list[dict[str, str]] = []
    subscribed = asyncio.Event()

    async def follow() -> None:
        async for event in admin.events():
            match event:
                case ("snapshot", _):
                    subscribed.set()
                case ("provider", provider) if provider["name"] == "router" and provider["router_models"]:
                    seen.append(statuses(provider["router_models"]))

    task = asyncio.create_task(follow())
    await asyncio.wait_for(subscribed.wait(), 10)
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_both_models_are_routed_by_name_and_the_capacity_is_what_the_router_can_run(
    routed: tuple[CorralDaemon, RouterProcess, str],
) -> None:
    daemon, router, key = routed
    provider = view(daemon)
    assert provider["state"] == "ready", provider
    assert statuses(provider["router_models"]) == {"alpha": "unloaded", "beta": "unloaded"}
    # --models-max 1 and --parallel 2: one model's two slots at a time.
    assert provider["capacity"] == 2
    assert "2 slots" in provider["health_detail"]
    assert daemon.admin_call("GET", "/models").json() == {"alpha": ["router"], "beta": ["router"]}
    with httpx.Client(base_url=daemon.base_url, headers={"authorization": f"Bearer {key}"}, timeout=30) as public:
        for model in ("alpha", "beta"):
            response = public.post("/v1/chat/completions", json=chat(model))
            assert response.status_code == 200, response.text
            assert response.json()["model"] == model
            assert response.headers["x-corral-provider"] == "router"
    assert router.statuses() == {"alpha": "unloaded", "beta": "loaded"}


@pytest.mark.asyncio
async def test_loads_and_unloads_through_the_admin_api_are_seen_in_the_provider_and_on_the_event_stream(
    routed: tuple[CorralDaemon, RouterProcess, str],
) -> None:
    daemon, router, _ = routed
    async with CorralClient(daemon.socket_path) as admin, router_events(admin) as seen:
        loaded = await admin.load_provider_model("router", "alpha")
        assert statuses(loaded["router_models"]) == {"alpha": "loaded", "beta": "unloaded"}
        assert router.statuses()["alpha"] == "loaded"
        await wait_for_async(lambda: {"alpha": "loaded", "beta": "unloaded"} in seen, "alpha loaded on the stream")

        swapped = await admin.load_provider_model("router", "beta")  # models-max 1: alpha makes room
        assert statuses(swapped["router_models"]) == {"alpha": "unloaded", "beta": "loaded"}
        await wait_for_async(lambda: {"alpha": "unloaded", "beta": "loaded"} in seen, "beta loaded on the stream")

        unloaded = await admin.unload_provider_model("router", "beta")
        assert statuses(unloaded["router_models"]) == {"alpha": "unloaded", "beta": "unloaded"}
        assert router.statuses() == {"alpha": "unloaded", "beta": "unloaded"}
        await wait_for_async(lambda: seen[-1] == {"alpha": "unloaded", "beta": "unloaded"}, "the unload on the stream")
        assert (await admin.provider("router"))["router_models"] == unloaded["router_models"]


@pytest.mark.asyncio
async def test_model_routes_refuse_an_unknown_provider_or_model_and_a_provider_that_is_not_a_router(
    routed: tuple[CorralDaemon, RouterProcess, str], llama_servers: Any
) -> None:
    daemon, _, _ = routed
    (plain,) = llama_servers(1)
    daemon.add_provider("plain", plain.base_url)
    async with CorralClient(daemon.socket_path) as admin:
        for name, model, status, code in (
            ("nobody", "alpha", 404, "provider_not_found"),
            ("router", "gamma", 404, "model_not_found"),
            ("plain", "tiny", 400, "not_a_router"),
        ):
            with pytest.raises(CorralError) as refused:
                await admin.load_provider_model(name, model)
            assert (refused.value.status, refused.value.code) == (status, code), refused.value
        with pytest.raises(CorralError) as refused:
            await admin.unload_provider_model("router", "gamma")
        assert refused.value.status == 404
        assert "alpha, beta" in str(refused.value)  # it says which models there are


@pytest.mark.asyncio
async def test_an_unload_waits_for_the_stream_running_on_the_model_instead_of_cutting_it(
    routed: tuple[CorralDaemon, RouterProcess, str],
) -> None:
    daemon, router, key = routed
    headers = {"authorization": f"Bearer {key}"}
    async with (
        CorralClient(daemon.socket_path) as admin,
        httpx.AsyncClient(base_url=daemon.base_url, headers=headers, timeout=60) as public,
    ):
        await admin.load_provider_model("router", "alpha")
        async with public.stream("POST", "/v1/chat/completions", json={"model": "alpha", **LONG_STREAM}) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("data:")  # it runs on alpha now
            unload = asyncio.create_task(admin.unload_provider_model("router", "alpha"))
            rest = [line async for line in lines]
            assert "data: [DONE]" in rest, "the stream was cut"
        unloaded = await unload
    assert statuses(unloaded["router_models"])["alpha"] == "unloaded"
    assert router.statuses()["alpha"] == "unloaded"


@pytest.mark.asyncio
async def test_no_request_fails_while_llama_server_swaps_the_models(
    routed: tuple[CorralDaemon, RouterProcess, str],
) -> None:
    daemon, router, key = routed
    headers = {"authorization": f"Bearer {key}"}
    models = ["alpha", "beta"] * 15  # 30 requests, 4 at a time, each model's next waiting for the other's to end
    gate = asyncio.Semaphore(4)

    async def send(public: httpx.AsyncClient, model: str) -> tuple[str, int, str]:
        async with gate:
            response = await public.post("/v1/chat/completions", json=chat(model))
            return model, response.status_code, response.text

    async with httpx.AsyncClient(base_url=daemon.base_url, headers=headers, timeout=60) as public:
        answers = await asyncio.gather(*(send(public, model) for model in models))
    failed = [answer for answer in answers if answer[1] != 200]
    assert not failed, failed
    wait_for(lambda: router.loads() >= 3, "llama-server's log to show the swaps (its own thread writes it)")
    provider = view(daemon)
    assert provider["errors"] == 0
    assert provider["circuit"] == "closed"


def test_a_request_for_a_model_a_full_router_does_not_run_is_left_to_its_queue_not_loaded_explicitly(
    routed: tuple[CorralDaemon, RouterProcess, str],
) -> None:
    # llama-server's explicit load at --models-max waits for the model it evicts to be unloaded, and blocks
    # for good when a queued request loads that model again first; its own queue for a request does not.
    daemon, router, key = routed
    headers = {"authorization": f"Bearer {key}"}
    first = httpx.post(daemon.base_url + "/v1/chat/completions", json=chat("alpha"), headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    wait_for(lambda: statuses(view(daemon)["router_models"])["alpha"] == "loaded", "Corral to see alpha loaded")

    second = httpx.post(daemon.base_url + "/v1/chat/completions", json=chat("beta"), headers=headers, timeout=60)
    assert second.status_code == 200, second.text
    wait_for(lambda: "evicting idle LRU name=alpha for a queued request" in router.log(), "llama-server's log")
    assert "models_max limit reached" not in router.log()  # what an explicit load at the limit logs


def test_a_model_unloaded_behind_corrals_back_is_loaded_again_and_the_request_answered(
    corral_daemon: CorralDaemon, llama_server_binary: Path, models_dir: Path, tmp_path: Path
) -> None:
    # Autoload off: llama-server answers a request for a model it does not run with a 400 (as it does, with
    # autoload on, when another model's request swaps the model out between its load and the request's
    # proxying), where Corral's last listing still says loaded.
    router = start_router(llama_server_binary, models_dir, tmp_path / "router.log", "--no-models-autoload")
    try:
        corral_daemon.add_provider("router", router.base_url)
        key = corral_daemon.create_key("app")
        loaded = corral_daemon.admin_call("POST", "/providers/router/models/load", json={"model": "alpha"})
        assert loaded.status_code == 200, loaded.text
        unloaded = httpx.post(router.base_url + "/models/unload", json={"model": "alpha"}, timeout=10)
        assert unloaded.status_code == 200, unloaded.text
        wait_for(lambda: router.statuses()["alpha"] == "unloaded", "llama-server to unload alpha")
        assert statuses(view(corral_daemon)["router_models"])["alpha"] == "loaded"  # Corral has not seen it yet

        answer = httpx.post(
            corral_daemon.base_url + "/v1/chat/completions",
            json=chat("alpha"),
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert router.statuses()["alpha"] == "loaded"
        provider = view(corral_daemon)
        assert provider["errors"] == 0
        assert provider["circuit"] == "closed"
    finally:
        stop_process(router.process)


def corral(daemon: CorralDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "console.cli", *args, "--socket", str(daemon.socket_path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_cli_lists_loads_and_unloads_a_router_s_models(routed: tuple[CorralDaemon, RouterProcess, str]) -> None:
    daemon, router, _ = routed
    loaded = corral(daemon, "providers", "load-model", "router", "beta")
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded beta on router" in loaded.stdout
    assert router.statuses()["beta"] == "loaded"
    listed = corral(daemon, "providers", "models", "router")
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert rows == {"alpha": "unloaded", "beta": "loaded"}, listed.stdout
    unloaded = corral(daemon, "providers", "unload-model", "router", "beta")
    assert unloaded.returncode == 0, unloaded.stderr
    assert router.statuses()["beta"] == "unloaded"
    unknown = corral(daemon, "providers", "load-model", "router", "gamma")
    assert unknown.returncode == 1
    assert "has no model 'gamma'" in unknown.stderr
