"""Fixtures over the real testbed components. A missing component skips (or, under CI, fails) the test."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.testbed import (
    CorralDaemon,
    ImageUnavailable,
    LlamaServerPool,
    LlamaServerProcess,
    LlamaServerUnavailable,
    NvmlStub,
    NvmlStubUnavailable,
    component_unavailable,
    daemons_on,
    ensure_llama_image,
    ensure_llama_server,
    ensure_nvml_stub,
    ensure_tiny_model,
)

TESTBED_LABEL = "corral.testbed"


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return ensure_tiny_model()


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    try:
        return ensure_llama_server()
    except LlamaServerUnavailable as error:
        component_unavailable("llama-server", str(error))


@pytest.fixture
def llama_servers(
    llama_server_binary: Path, tiny_model: Path, tmp_path: Path
) -> Iterator[Callable[..., list[LlamaServerProcess]]]:
    """Call with N to start N llama-servers on free 127.0.0.1 ports; all are killed at teardown."""
    with LlamaServerPool(llama_server_binary, tiny_model, tmp_path) as pool:
        yield pool.start


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as error:
        component_unavailable("Docker engine", f"cannot reach it ({error}); start dockerd or set DOCKER_HOST")
    _remove_testbed_containers(client)  # left behind by a run that was killed
    yield client
    _remove_testbed_containers(client)
    client.close()


def _remove_testbed_containers(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": TESTBED_LABEL}):
        container.remove(force=True)


@pytest.fixture(scope="session")
def llama_server_image(docker_client: docker.DockerClient, llama_server_binary: Path) -> str:
    try:
        return ensure_llama_image(docker_client, llama_server_binary)
    except ImageUnavailable as error:
        component_unavailable("llama-server image", str(error))


@pytest.fixture
def run_container(docker_client: docker.DockerClient) -> Iterator[Callable[..., docker.models.containers.Container]]:
    """Run a detached container on the host network, labelled so teardown removes it whatever happens."""
    started: list[docker.models.containers.Container] = []

    def run(image: str, **kwargs: object) -> docker.models.containers.Container:
        labels = dict(kwargs.pop("labels", None) or {})  # type: ignore[call-overload]
        labels[TESTBED_LABEL] = "1"
        container = docker_client.containers.run(image, detach=True, network_mode="host", labels=labels, **kwargs)
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@pytest.fixture(scope="session")
def nvml_stub() -> NvmlStub:
    try:
        return ensure_nvml_stub()
    except NvmlStubUnavailable as error:
        component_unavailable("NVML stub", str(error))


@pytest.fixture
def corral_daemon(tmp_path: Path) -> Iterator[CorralDaemon]:
    """A running corral-core with an empty data dir; stopped with SIGTERM at teardown."""
    daemon = CorralDaemon(tmp_path / "corral").start()
    yield daemon
    daemon.stop()


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    """A private socket path; any daemon started on it is stopped with SIGTERM at teardown."""
    (tmp_path / "run").mkdir(mode=0o700)
    path = tmp_path / "run" / "corral.sock"
    yield path
    pids = daemons_on(path)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        time.sleep(0.05)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
