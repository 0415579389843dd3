"""Containers with GPU device requests start on the testbed's GPU engine (a dockerd with a fake NVIDIA hook), and
the NVML stub measures their llama-servers while they run: the ground the eviction tests stand on."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import openai
import pytest

from gateway_core.fleet.containers import ContainerEngine
from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.units import GiB
from tests.testbed import free_port

pytestmark = [pytest.mark.docker, pytest.mark.llama_server, pytest.mark.nvml_stub]

HEALTHY_TIMEOUT_S = 60.0
# What docker-py sends for Corral's DeviceRequest(device_ids=["0"], capabilities=[["gpu"]]), as the engine keeps it.
GPU_0_REQUEST = {"Driver": "", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}


@pytest.fixture
def gpu_engine(gpu_docker) -> Iterator[ContainerEngine]:
    with ContainerEngine.connect(gpu_docker.docker_host) as engine:
        yield engine
    gpu_docker.remove_containers()


def environment_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")


def test_a_container_with_a_gpu_device_request_for_gpu_0_starts_and_serves(gpu_engine, gpu_docker, tiny_model):
    calls_before = gpu_docker.hook_calls_path.read_text() if gpu_docker.hook_calls_path.exists() else ""
    spec = DeploymentSpec(
        name=f"gpu-{uuid.uuid4().hex[:8]}",
        model_path=str(tiny_model),
        image=gpu_docker.image,
        gpus=(0,),
        port=free_port(),
        ctx_size=512,
    )

    gpu_engine.deploy(spec)
    gpu_engine.wait_healthy(spec.name, timeout_s=HEALTHY_TIMEOUT_S)

    attrs = gpu_engine.client.containers.get(f"corral-{spec.name}").attrs
    assert attrs["State"]["Running"]
    assert attrs["HostConfig"]["DeviceRequests"] == [GPU_0_REQUEST]
    pid = gpu_engine.main_pid(spec.name)
    assert pid is not None
    assert "NVIDIA_VISIBLE_DEVICES=0" in environment_of(pid), "the engine's nvidia driver set the visible devices"
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "llama-server"
    calls = gpu_docker.hook_calls_path.read_text()
    assert calls.removeprefix(calls_before).splitlines() == ["prestart"], "the prestart hook ran once"
    reply = httpx.post(
        f"{spec.base_url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] >= 1


def test_the_machines_own_engine_without_the_hook_refuses_the_same_request(
    docker_client, llama_server_image, gpu_docker
):
    """The control: the machine's dockerd (untouched, no hook on its PATH) has no nvidia device driver."""
    container = docker_client.containers.create(
        llama_server_image,
        command=["--version"],
        network_mode="host",
        labels={"corral.testbed": "1"},
        device_requests=[docker.types.DeviceRequest(device_ids=["0"], capabilities=[["gpu"]])],
    )
    try:
        with pytest.raises(docker.errors.APIError, match="could not select device driver"):
            container.start()
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def test_corral_deploys_on_gpu_0_and_the_stub_measures_the_llama_server_while_it_runs(gpu_corral, tiny_model):
    name = f"g{uuid.uuid4().hex[:8]}"
    corral = gpu_corral(memory_total=8 * GiB, memory_used=1 * GiB, measured={name: 3 * GiB})
    corral.wait_memory_used(1 * GiB)

    deployed = corral.daemon.admin_call("POST", "/fleet/deployments", corral.deploy_body(name, tiny_model))

    assert deployed.status_code == 201, deployed.text
    container = corral.docker.containers.get(f"corral-{name}")
    assert container.attrs["HostConfig"]["DeviceRequests"] == [GPU_0_REQUEST]
    corral.wait_memory_used(4 * GiB)
    (process,) = corral.gpu()["processes"]
    assert process["pid"] == container.attrs["State"]["Pid"]
    assert process["used_memory_bytes"] == 3 * GiB
    with openai.OpenAI(
        base_url=corral.daemon.base_url + "/v1", api_key=corral.daemon.create_key("app"), max_retries=0
    ) as client:
        reply = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=4, extra_body={"ignore_eos": True}
        )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4

    container.remove(force=True)  # its llama-server exits: the driver (here the stub) frees its memory

    corral.wait_memory_used(1 * GiB)
    assert corral.gpu()["processes"] == []
