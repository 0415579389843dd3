"""After a GPU deployment is healthy, its llama-server must show up in NVML's process list on its GPUs."""

from __future__ import annotations

import contextlib

import docker.errors
import pytest

from gateway_core.fleet.containers import ContainerEngine
from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.gpus import GpuDevice, GpuProcess, GpuSnapshot
from gateway_core.fleet.manager import FleetManager
from tests.testbed import free_port

pytestmark = [pytest.mark.docker, pytest.mark.llama_server]


async def _noop(*_: object) -> None:
    return None


def snapshot_with(pids: list[int]) -> GpuSnapshot:
    processes = tuple(GpuProcess(pid=pid, name="llama-server", used_memory_bytes=2**30) for pid in pids)
    return GpuSnapshot(state="ok", devices=(GpuDevice(index=0, uuid="GPU-0", name="NVIDIA L4", processes=processes),))


@pytest.fixture
def running_deployment(docker_client, llama_server_image, tiny_model):
    """A real llama-server container (on the CPU: no NVIDIA runtime here) and the spec it was made from."""
    spec = DeploymentSpec(
        name="offload-check",
        model_path=str(tiny_model),
        image=llama_server_image,
        gpus=None,
        port=free_port(),
        ctx_size=512,
    )
    engine = ContainerEngine(docker_client)
    engine.deploy(spec, extra_labels={"corral.testbed": "1"})
    engine.wait_healthy(spec.name, timeout_s=60)
    yield engine, spec
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get("corral-offload-check").remove(force=True)


@pytest.mark.asyncio
@pytest.mark.parametrize(("on_gpu", "warned"), [(True, False), (False, True)])
async def test_a_deployment_missing_from_its_gpus_is_flagged_as_a_silent_cpu_fallback(
    running_deployment, on_gpu, warned
):
    engine, spec = running_deployment
    pid = engine.main_pid(spec.name)
    snapshot = snapshot_with([pid] if on_gpu else [4242])
    manager = FleetManager(
        gpus=lambda: snapshot, register=_noop, unregister=_noop, publish=lambda *_: None, on_deployment_changed=_noop
    )
    manager.engine = engine

    warnings = await manager.verify_offload(spec.model_copy(update={"gpus": (0,)}))

    assert bool(warnings) is warned
    if warned:
        assert f"(pid {pid}) does not appear on any GPU" in warnings[0]
        assert "silently fallen back to the CPU" in warnings[0]
