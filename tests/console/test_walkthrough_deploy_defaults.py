"""The deploy form starts from what the box has: a llama-server image the engine holds, and the model's own
context (found in the walkthrough: an image that was not there, and 4096 over a model trained on 2048)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from console.screens.deploy_form import DeployForm
from gateway_core.fleet.deployment import CPU_CONTEXT, default_context, preferred_image
from tests.console.test_forms import FormHost, text
from tests.testbed import CorralDaemon
from tests.testbed.nvml import NvmlStub, write_devices
from tests.testbed.waiting import wait_for, wait_for_async

GiB = 1024**3


def image_hint(app: FormHost) -> str:
    return str(app.screen.query_one("#image-field .field-hint", Static).content)


@pytest.mark.asyncio
async def test_the_form_offers_an_image_the_engine_has_and_the_models_trained_context(
    fleet_daemon: CorralDaemon, llama_server_image: str
) -> None:
    images = fleet_daemon.admin_call("GET", "/fleet/images").json()
    assert llama_server_image in images
    app = FormHost(fleet_daemon.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open(DeployForm())
        await pilot.pause()
        await wait_for_async(lambda: "KV cache" in text(app, "#plan"), "the first plan", pause=pilot.pause)
        await wait_for_async(
            lambda: app.screen.query_one("#image", Input).value != "", "the image to be picked", pause=pilot.pause
        )

        assert app.screen.query_one("#image", Input).value == preferred_image(images, gpus=False)
        assert llama_server_image in image_hint(app)
        assert app.screen.query_one("#ctx_size", Input).value == "2048"  # tiny-llama's trained context
        await wait_for_async(lambda: "2048 ctx" in text(app, "#plan"), "a plan at 2048", pause=pilot.pause)
        assert text(app, "#warnings") == "", "no warning that the context is above the trained one"


@pytest.mark.asyncio
async def test_a_typed_context_and_image_are_kept(fleet_daemon: CorralDaemon, llama_server_image: str) -> None:
    app = FormHost(fleet_daemon.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open(DeployForm())
        await pilot.pause()
        await wait_for_async(lambda: "2048 ctx" in text(app, "#plan"), "the first plan", pause=pilot.pause)
        ctx = app.screen.query_one("#ctx_size", Input)
        ctx.value = "1024"
        await wait_for_async(lambda: "1024 ctx" in text(app, "#plan"), "a plan at 1024", pause=pilot.pause)
        assert ctx.value == "1024"


@pytest.mark.asyncio
async def test_with_no_docker_engine_the_image_field_says_why_none_is_offered(tmp_path: Path, tiny_model: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_model, models / "tiny-llama.gguf")
    env = {"CORRAL_MODELS_DIRS": str(models), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    daemon = CorralDaemon(tmp_path / "c", extra_env=env).start()
    try:
        app = FormHost(daemon.socket_path)
        async with app.run_test(size=(80, 24)) as pilot:
            app.open(DeployForm())
            await pilot.pause()
            await wait_for_async(
                lambda: "cannot list" in image_hint(app), "the reason no image is offered", pause=pilot.pause
            )
            assert "Docker engine" in image_hint(app)
            assert app.screen.query_one("#image", Input).value == ""
    finally:
        daemon.stop()


def test_the_default_context_is_the_trained_one_capped_by_what_fits_on_the_gpus() -> None:
    # 4 GiB of weights and compute, 1 MiB of KV cache per token of context (at 1024 tokens, 1 GiB).
    estimate = {"ctx_size": 1024, "kv_cache": GiB, "total": 5 * GiB}
    assert default_context(32768, estimate, 80 * GiB) == 32768  # it all fits
    assert default_context(32768, estimate, 12 * GiB) == 8192  # 8 GiB left for the KV cache
    assert default_context(32768, estimate, 3 * GiB) == CPU_CONTEXT  # not even the weights fit: a partial offload
    assert default_context(2048, None, None) == 2048  # on the CPU, a short trained context as it is
    assert default_context(131072, None, None) == CPU_CONTEXT  # and a long one capped at llama-server's default
    assert default_context(None, None, None) == CPU_CONTEXT


def test_the_preferred_image_is_llama_cpps_own_for_the_mode_then_a_build_for_the_mode() -> None:
    local = ["corral/llama-server:cpu", "ghcr.io/ggml-org/llama.cpp:server-cuda", "me/llama.cpp:vulkan"]
    assert preferred_image(local, gpus=True) == "ghcr.io/ggml-org/llama.cpp:server-cuda"
    assert preferred_image(local, gpus=False) == "corral/llama-server:cpu"
    assert preferred_image(["me/llama.cpp:vulkan"], gpus=False) == "me/llama.cpp:vulkan"  # better than none
    assert preferred_image([], gpus=True) is None


class SeededFormHost(FormHost):
    """FormHost with LiveState from corral-core's first event, so the form sees the GPUs as the console would."""

    async def on_mount(self) -> None:
        async with contextlib.aclosing(self.client.events()) as events:
            kind, data = await anext(events)
        self.live.apply(kind, data)


@pytest.mark.asyncio
@pytest.mark.nvml_stub
async def test_on_a_gpu_the_context_is_capped_by_what_fits_in_its_free_memory(
    tmp_path: Path, tiny_model: Path, nvml_stub: NvmlStub
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_model, models / "tiny-llama.gguf")
    device = {"name": "NVIDIA L4", "uuid": "GPU-small", "memory_total": 24 * GiB, "memory_used": 0}
    devices = write_devices(tmp_path / "gpus.json", [device])
    env = {**nvml_stub.environment(devices), "CORRAL_MODELS_DIRS": str(models)}
    daemon = CorralDaemon(tmp_path / "c", extra_env=env).start()
    try:
        plan = daemon.admin_call(
            "POST", "/fleet/plan", {"model_path": str(models / "tiny-llama.gguf"), "gpus": "all", "ctx_size": 2048}
        ).json()["estimate"]
        per_token = plan["kv_cache"] / 2048
        # Free memory for the weights, the compute margin and 1,100 tokens of KV cache: 1,024 fit, in steps of 256.
        free = plan["total"] - plan["kv_cache"] + int(per_token * 1100)
        write_devices(devices, [{**device, "memory_used": device["memory_total"] - free}])
        wait_for(
            lambda: daemon.admin_call("GET", "/gpus").json()["devices"][0]["memory_used_bytes"] > 0,
            "corral-core to sample the fuller GPU",
        )
        app = SeededFormHost(daemon.socket_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for_async(lambda: bool(app.live.gpus["devices"]), "the GPUs", pause=pilot.pause)
            app.open(DeployForm())
            await pilot.pause()
            ctx = app.screen.query_one("#ctx_size", Input)
            await wait_for_async(lambda: ctx.value == "1024", "the context to be capped", pause=pilot.pause)
            await wait_for_async(lambda: "1024 ctx" in text(app, "#plan"), "a plan at 1024", pause=pilot.pause)
            assert app.screen.query_one("#plan").has_class("-fits")
    finally:
        daemon.stop()
