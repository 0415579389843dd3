"""Deployments for the console benchmark: real llama-server containers, made the way `corral fleet deploy` makes them.

Each one is a `DeploymentSpec` deployed through the fleet's own `ContainerEngine` (labels, host network, healthcheck),
running the testbed's image and tiny model on the CPU. They are not registered as providers, so the providers
panel keeps its own count. Without a Docker engine, the image or llama-server, there are none, and `reason` says why.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker
import docker.errors

from gateway_core.fleet.containers import ContainerEngine, FleetError
from gateway_core.fleet.deployment import DeploymentSpec
from tests.testbed import (
    ImageUnavailable,
    LlamaServerUnavailable,
    ensure_llama_image,
    ensure_llama_server,
    ensure_tiny_model,
    free_ports,
)

BENCH_LABEL = "corral.bench.console"  # what cleanup looks for, here and after a run that was killed
DEPLOY_THREADS = 4


@dataclass
class BenchFleet:
    count: int
    names: list[str] = field(default_factory=list)
    reason: str = ""  # why there are fewer than `count`
    engine: ContainerEngine | None = None

    def start(self) -> BenchFleet:
        if self.count <= 0:
            return self
        try:
            self.engine = ContainerEngine.connect()
            image = ensure_llama_image(self.engine.client, ensure_llama_server())
        except (FleetError, ImageUnavailable, LlamaServerUnavailable, docker.errors.DockerException) as error:
            self.reason = str(error).splitlines()[0]
            return self
        self._remove_all()  # left behind by a killed run
        model = str(ensure_tiny_model())
        ports = free_ports(self.count)  # one at a time, the kernel can hand the same port out twice
        specs = [
            DeploymentSpec(name=f"bench-{index:02d}", model_path=model, image=image, gpus=None, ctx_size=256, port=port)
            for index, port in enumerate(ports)
        ]
        with ThreadPoolExecutor(DEPLOY_THREADS) as pool:
            outcomes = list(pool.map(self._deploy, specs))
        self.names = [spec.name for spec, error in zip(specs, outcomes, strict=True) if error is None]
        failures = [error for error in outcomes if error is not None]
        if failures:
            self.reason = f"{len(failures)} of {self.count} failed to deploy: {failures[0]}"
        return self

    def _deploy(self, spec: DeploymentSpec) -> str | None:
        assert self.engine is not None
        try:
            self.engine.deploy(spec, extra_labels={BENCH_LABEL: "1"})
        except FleetError as error:
            return str(error).splitlines()[0]
        return None

    def _remove_all(self) -> None:
        assert self.engine is not None
        for container in self.engine.client.containers.list(all=True, filters={"label": BENCH_LABEL}):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)

    def stop(self) -> None:
        if self.engine is None:
            return
        with contextlib.suppress(docker.errors.DockerException):
            self._remove_all()
        self.engine.close()
        self.engine = None
