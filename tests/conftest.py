"""Fixtures over the real testbed components. A missing component skips (or, under CI, fails) the test."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import pytest
import pytest_asyncio

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
from tests.testbed.gpu_corral import GpuCorral, start_gpu_corral
from tests.testbed.gpu_docker import GpuDockerEngine, GpuDockerUnavailable, start_gpu_docker
from tests.testbed.sshd import SshdUnavailable, SshServer
from tests.testbed.waiting import wait_for

if TYPE_CHECKING:
    from tests.testbed.in_process import InProcessGateway

TESTBED_LABEL = "corral.testbed"
# Tests that use the Docker engine run on one xdist worker (`--dist loadgroup`, set in pyproject.toml): the
# session's `docker_client` removes every container labelled TESTBED_LABEL, and fleet deployments pick ports
# from one range on the host network, so two workers would break each other's containers.
DOCKER_GROUP = "docker-engine"


# CORRAL_LEAK_CHECK=1: a full collection after every test, so that a socket or file a test left open is blamed on
# that test (as an error in its teardown) rather than surfacing in whichever later test collects it. It makes the
# suite slower (232 s against about 165 s on two workers here), so it is for chasing a leak, not for CI.
LEAK_CHECK = os.environ.get("CORRAL_LEAK_CHECK") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield
    if not LEAK_CHECK:
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    leaks = [leak for leak in leaks if "[closed]" not in leak]  # docker-py's, ignored in pyproject.toml too
    if leaks:
        raise AssertionError(f"{item.nodeid} left open: {'; '.join(leaks)}")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.add_marker(pytest.mark.xdist_group(DOCKER_GROUP))


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


@pytest.fixture(scope="module")
def shared_llama_server(
    llama_server_binary: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServerProcess]:
    """One llama-server (4 slots) for all the tests of a module that only send it requests: starting one per
    test cost more than the tests. A test that stops, kills or watches the slots of its server uses `llama_servers`."""
    with LlamaServerPool(llama_server_binary, tiny_model, tmp_path_factory.mktemp("shared-llama")) as pool:
        (server,) = pool.start(1, parallel=4)
        yield server


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


@pytest.fixture(scope="session")
def gpu_docker(llama_server_binary: Path) -> Iterator[GpuDockerEngine]:
    """A second dockerd of the tests' own, with a fake NVIDIA hook, on which containers with GPU device requests
    start (the machine's engine refuses them without the NVIDIA Container Toolkit); the llama-server image is
    imported into it (`gpu_docker.image`). Reach it with `DOCKER_HOST=gpu_docker.docker_host`. Needs root.
    Stopped, and its directory removed, at the end of the session."""
    try:
        engine = start_gpu_docker(llama_server_binary)
    except (GpuDockerUnavailable, ImageUnavailable) as error:
        component_unavailable("GPU Docker engine", str(error))
    yield engine
    engine.stop()


@pytest.fixture
def gpu_corral(gpu_docker: GpuDockerEngine, nvml_stub: NvmlStub, tmp_path: Path) -> Iterator[Callable[..., GpuCorral]]:
    """Start a corral-core on one stub GPU whose memory follows the llama-servers it runs, deploying on `gpu_docker`:

        corral = gpu_corral(memory_total=4 * GiB, measured={"a": 3 * GiB, "b": 3 * GiB})
        corral.daemon.admin_call("POST", "/fleet/deployments", corral.deploy_body("a", tiny_model, load={...}))
        corral.wait_memory_used(3 * GiB)        # GPU 0 as corral-core sampled it, A's llama-server running
        corral.measure("c", 1 * GiB)            # or set_gpu(memory_total=..., memory_used=...) to rewrite it

    `measured` maps a deployment's name to what each of its live llama-servers uses on GPU 0 (the NVML stub lists
    their real pids and frees the memory when they exit: it matches every process on the machine, so give deployments
    unique names); `memory_used` is what other processes hold. Keywords
    `extra_env` and `extra_args` go to CorralDaemon. The GPU is sampled every 0.2 s. At teardown each corral-core
    is stopped and every container on the GPU engine removed."""
    started: list[GpuCorral] = []

    def start(memory_total: int, **options: Any) -> GpuCorral:
        corral = start_gpu_corral(
            tmp_path / f"corral-gpu-{len(started)}", nvml_stub, gpu_docker, memory_total, **options
        )
        started.append(corral)
        return corral

    yield start
    for corral in started:
        corral.close()
    gpu_docker.remove_containers()


@pytest.fixture
def corral_daemon(tmp_path: Path) -> Iterator[CorralDaemon]:
    """A running corral-core with an empty data dir; stopped with SIGTERM at teardown."""
    daemon = CorralDaemon(tmp_path / "corral").start()
    yield daemon
    daemon.stop()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    """A real OpenSSH server on 127.0.0.1 that lets the current user in with `sshd.identity` (its host key is in
    `sshd.known_hosts`) and forwards Unix sockets; stopped at teardown."""
    try:
        server = SshServer(tmp_path / "sshd").start()
    except SshdUnavailable as error:
        component_unavailable("sshd", str(error))
    yield server
    server.stop()


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    """A private socket path; any daemon started on it is stopped with SIGTERM at teardown."""
    (tmp_path / "run").mkdir(mode=0o700)
    path = tmp_path / "run" / "corral.sock"
    yield path
    pids = daemons_on(path)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), "the daemons to exit")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., contextlib.AbstractAsyncContextManager[InProcessGateway]]:
    """`async with start_gateway(probe_interval_s=0.1) as gateway:` an in-process gateway with options; a second
    one on the same data dir is the first one restarted. Its Docker engine is absent (tests/testbed/in_process.py)."""
    # Imported here, not at the top: a test run that needs no gateway should not fail to collect over one.
    from tests.testbed.in_process import NO_DOCKER_HOST, InProcessGateway

    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER_HOST)

    def start(data_dir: Path | None = None, **options: Any) -> contextlib.AbstractAsyncContextManager[InProcessGateway]:
        return InProcessGateway.running(data_dir or tmp_path / "corral", **options)

    return start


@pytest_asyncio.fixture
async def gateway(
    start_gateway: Callable[..., contextlib.AbstractAsyncContextManager[InProcessGateway]],
) -> AsyncIterator[InProcessGateway]:
    """corral-core's objects in this process over an empty data dir, with a fake clock (`gateway.clock`)."""
    async with start_gateway() as gateway:
        yield gateway
