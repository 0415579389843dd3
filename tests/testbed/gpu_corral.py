"""corral-core on a fake GPU whose memory follows the llama-servers it runs.

`GpuCorral` is a real corral-core whose NVML is the stub (tests/testbed/nvml.py), serving one GPU that the
test sizes, and whose Docker engine is the testbed's GPU engine (tests/testbed/gpu_docker.py), on which
containers with GPU device requests start. `measure(deployment, used)` says how much GPU memory each live
llama-server of a deployment uses: the stub then lists its real pid and counts its memory while it runs and
frees it when it exits, as the driver does, so eviction sees memory come and go with the containers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from .daemon import CorralDaemon
from .gpu_docker import GpuDockerEngine
from .nvml import NvmlStub, deployment_memory, write_devices
from .waiting import wait_for

GPU_UUID = "GPU-c0a1c0a1-0000-4000-8000-000000000000"
SAMPLE_INTERVAL_S = 0.2  # the daemon's --gpu-interval: the stub's sample costs about 0.1 ms


@dataclass
class GpuCorral:
    daemon: CorralDaemon
    engine: GpuDockerEngine
    docker: docker.DockerClient  # a client of the GPU engine
    devices_file: Path
    memory_total: int
    memory_used: int = 0  # what else holds memory on the GPU (the file's memory_used)
    measured: dict[str, int] = field(default_factory=dict)  # deployment -> bytes each of its llama-servers uses

    @property
    def image(self) -> str:
        """The llama-server image on the GPU engine, for deploy bodies."""
        return self.engine.image

    def close(self) -> None:
        """Stop corral-core and close the engine client (the fixture does this; the containers are left)."""
        self.daemon.stop()
        self.docker.close()

    def write(self) -> None:
        """Write the stub's devices file from the fields; the daemon's next sample reads it."""
        processes = [deployment_memory(name, used) for name, used in sorted(self.measured.items())]
        gpu: dict[str, Any] = {
            "name": "NVIDIA L4 (stub)",
            "uuid": GPU_UUID,
            "memory_total": self.memory_total,
            "memory_used": self.memory_used,
            "utilization_gpu": 0,
            "utilization_memory": 0,
            "temperature": 40,
            "processes": processes,
        }
        write_devices(self.devices_file, [gpu])

    def set_gpu(self, *, memory_total: int | None = None, memory_used: int | None = None) -> None:
        """Resize the GPU, or change what other processes hold on it."""
        if memory_total is not None:
            self.memory_total = memory_total
        if memory_used is not None:
            self.memory_used = memory_used
        self.write()

    def measure(self, deployment: str, used_memory: int) -> None:
        """Each live llama-server of `deployment` (found by its LLAMA_ARG_ALIAS) uses `used_memory` on GPU 0."""
        self.measured[deployment] = used_memory
        self.write()

    def forget(self, deployment: str) -> None:
        self.measured.pop(deployment, None)
        self.write()

    def gpu(self) -> dict[str, Any]:
        """GPU 0 as corral-core last sampled it (GET /gpus)."""
        snapshot = self.daemon.admin_call("GET", "/gpus").json()
        assert snapshot["state"] == "ok", snapshot
        device: dict[str, Any] = snapshot["devices"][0]
        return device

    def wait_memory_used(self, expected: int, timeout_s: float = 15.0) -> None:
        """Until corral-core has sampled GPU 0 with `expected` bytes used."""
        wait_for(lambda: self.gpu()["memory_used_bytes"] == expected, f"GPU 0 to show {expected} bytes used", timeout_s)

    def deploy_body(self, name: str, model_path: Path, **fields: Any) -> dict[str, Any]:
        """A POST /fleet/deployments body for a container on GPU 0 with this engine's image; keywords override."""
        return {
            "name": name,
            "model_path": str(model_path),
            "image": self.image,
            "gpus": [0],
            "ctx_size": 512,
            **fields,
        }


def start_gpu_corral(
    data_dir: Path,
    stub: NvmlStub,
    engine: GpuDockerEngine,
    memory_total: int,
    memory_used: int = 0,
    measured: dict[str, int] | None = None,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> GpuCorral:
    data_dir.mkdir(parents=True, exist_ok=True)
    devices_file = data_dir.parent / f"{data_dir.name}-gpus.json"
    env = {**stub.environment(devices_file), "DOCKER_HOST": engine.docker_host, **(extra_env or {})}
    daemon = CorralDaemon(data_dir, extra_env=env, extra_args=("--gpu-interval", str(SAMPLE_INTERVAL_S), *extra_args))
    corral = GpuCorral(daemon, engine, engine.client(), devices_file, memory_total, memory_used, dict(measured or {}))
    corral.write()
    try:
        daemon.start()
    except BaseException:
        corral.docker.close()
        raise
    return corral
