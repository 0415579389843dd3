"""llama-server deployments as containers, against the real Docker engine and the testbed's llama-server image."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from openai import OpenAI

from gateway_core.fleet.containers import (
    ContainerEngine,
    DeploymentConflict,
    DeploymentFailed,
    DeploymentNotFound,
    EngineUnavailable,
)
from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.inventory import ContainerInfo
from tests.conftest import TESTBED_LABEL
from tests.testbed import free_port

pytestmark = [pytest.mark.docker, pytest.mark.llama_server]

HEALTHY_TIMEOUT_S = 30.0
WATCHDOG_S = 15.0
Deploy = Callable[..., tuple[DeploymentSpec, ContainerInfo]]


@pytest.fixture
def engine(docker_client: docker.DockerClient) -> Iterator[ContainerEngine]:
    with ContainerEngine.connect() as engine:
        yield engine


@pytest.fixture
def make_spec(llama_server_image: str, tiny_model: Path) -> Callable[..., DeploymentSpec]:
    """A CPU spec for the tiny model with a unique name and a free port; keywords override fields."""

    def make(**fields: Any) -> DeploymentSpec:
        values: dict[str, Any] = {
            "name": f"test-{uuid.uuid4().hex[:8]}",
            "model_path": str(tiny_model),
            "image": llama_server_image,
            "gpus": None,
            "port": free_port(),
            "ctx_size": 512,
        }
        return DeploymentSpec(**{**values, **fields})

    return make


@pytest.fixture
def deploy(
    engine: ContainerEngine, docker_client: docker.DockerClient, make_spec: Callable[..., DeploymentSpec]
) -> Iterator[Deploy]:
    """Deploy through the engine under test; every corral-<name> it tried is removed at teardown."""
    names: list[str] = []

    def run(create_only: bool = False, **fields: Any) -> tuple[DeploymentSpec, ContainerInfo]:
        spec = fields.pop("spec", None) or make_spec(**fields)
        names.append(f"corral-{spec.name}")
        return spec, engine.deploy(spec, create_only=create_only, extra_labels={TESTBED_LABEL: "1"})

    yield run
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(name).remove(force=True)


@pytest.fixture
def deployed(deploy: Deploy, engine: ContainerEngine) -> DeploymentSpec:
    spec, _ = deploy()
    engine.wait_healthy(spec.name, timeout_s=HEALTHY_TIMEOUT_S)
    return spec


def find(engine: ContainerEngine, name: str) -> ContainerInfo | None:
    return next((info for info in engine.inventory() if info.name == name), None)


def health_status(spec: DeploymentSpec) -> int | None:
    try:
        return httpx.get(f"{spec.base_url}/health", timeout=2.0).status_code
    except httpx.TransportError:
        return None


def chat(spec: DeploymentSpec, max_tokens: int = 8) -> Any:
    with OpenAI(base_url=f"{spec.base_url}/v1", api_key="not-checked", max_retries=0, timeout=20.0) as client:
        return client.chat.completions.create(
            model=spec.name,
            messages=[{"role": "user", "content": "Say hello"}],
            max_tokens=max_tokens,
            temperature=0,
        )


def read_until(stream: Iterator[Any], found: Callable[[Any], bool]) -> list[Any]:
    """Items up to the first one `found` accepts; a watchdog closes the stream if it never comes."""
    seen: list[Any] = []
    watchdog = threading.Timer(WATCHDOG_S, stream.close)  # type: ignore[attr-defined]
    watchdog.start()
    try:
        for item in stream:
            seen.append(item)
            if found(item):
                return seen
    finally:
        watchdog.cancel()
    pytest.fail(f"the stream ended after {len(seen)} items without the expected one: {seen[-10:]}")


# --- deploying and serving -------------------------------------------------------------------


def test_deployment_serves_chat_completions_and_is_in_the_inventory(
    engine: ContainerEngine, deployed: DeploymentSpec, tiny_model: Path
):
    completion = chat(deployed)

    assert isinstance(completion.choices[0].message.content, str)
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert 1 <= completion.usage.completion_tokens <= 8
    info = find(engine, deployed.name)
    assert info is not None
    assert (info.container, info.managed, info.state) == (f"corral-{deployed.name}", True, "running")
    assert (info.port, info.model, info.gpus, info.image) == (deployed.port, str(tiny_model), "none", deployed.image)
    assert info.spec == deployed.model_dump(mode="json")
    assert info.started_at is not None
    assert info.uptime_s is not None
    assert info.uptime_s >= 0
    assert info.exit_code is None
    assert json.loads(json.dumps(info.to_dict()))["spec"]["port"] == deployed.port
    assert engine.spec(deployed.name) == deployed


def test_container_is_configured_as_specified(
    engine: ContainerEngine, docker_client: docker.DockerClient, deployed: DeploymentSpec, tiny_model: Path
):
    attrs = docker_client.containers.get(f"corral-{deployed.name}").attrs
    config, host = attrs["Config"], attrs["HostConfig"]

    assert host["NetworkMode"] == "host"
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert not host.get("DeviceRequests")
    assert [(m["Source"], m["Destination"], m["RW"]) for m in attrs["Mounts"]] == [
        (str(tiny_model.parent), "/models", False)
    ]
    assert f"LLAMA_ARG_MODEL=/models/{tiny_model.name}" in config["Env"]
    assert "LLAMA_ARG_N_GPU_LAYERS=0" in config["Env"]
    assert config["Labels"]["corral.managed"] == "true"
    assert config["Labels"]["corral.name"] == deployed.name
    assert config["Labels"]["corral.port"] == str(deployed.port)
    assert config["Labels"]["corral.gpus"] == "none"
    assert config["Labels"][TESTBED_LABEL] == "1"
    assert config["Healthcheck"] == {
        "Test": ["CMD", "curl", "-fsS", f"http://127.0.0.1:{deployed.port}/health"],
        "Interval": 10_000_000_000,
        "Timeout": 5_000_000_000,
        "StartPeriod": 60_000_000_000,
        "Retries": 3,
    }
    # Docker runs the healthcheck every 10 s; run its command now rather than wait for it.
    probe = docker_client.containers.get(f"corral-{deployed.name}").exec_run(config["Healthcheck"]["Test"][1:])
    assert probe.exit_code == 0, probe.output


def test_stop_start_restart_and_remove(engine: ContainerEngine, deployed: DeploymentSpec):
    stopped = engine.stop(deployed.name, timeout=5)
    assert (stopped.state, stopped.uptime_s) == ("exited", None)
    assert health_status(deployed) is None

    started = engine.start(f"corral-{deployed.name}")  # the container name works as well
    assert started.state == "running"
    engine.wait_healthy(deployed.name, timeout_s=HEALTHY_TIMEOUT_S)
    assert health_status(deployed) == 200

    restarted = engine.restart(deployed.name, timeout=5)
    assert restarted.state == "running"
    assert restarted.started_at != started.started_at
    engine.wait_healthy(deployed.name, timeout_s=HEALTHY_TIMEOUT_S)
    assert health_status(deployed) == 200

    engine.remove(deployed.name)
    assert find(engine, deployed.name) is None
    assert health_status(deployed) is None
    with pytest.raises(DeploymentNotFound, match=deployed.name):
        engine.info(deployed.name)


@pytest.mark.parametrize("operation", ["start", "stop", "restart", "remove", "logs", "wait_healthy"])
def test_unknown_deployment_is_not_found(engine: ContainerEngine, operation: str):
    with pytest.raises(DeploymentNotFound, match="no deployment 'no-such-deployment'"):
        getattr(engine, operation)("no-such-deployment")


# --- logs and events -------------------------------------------------------------------------


def test_logs_hold_the_startup_lines(engine: ContainerEngine, deployed: DeploymentSpec):
    logs = engine.logs(deployed.name)

    assert "model loaded" in logs
    assert f"listening on http://127.0.0.1:{deployed.port}" in logs
    assert len(engine.logs(deployed.name, tail=3).splitlines()) == 3


def test_follow_logs_yields_new_lines_and_stops_when_closed(engine: ContainerEngine, deployed: DeploymentSpec):
    with engine.follow_logs(deployed.name, tail=0) as lines:
        chat(deployed)
        seen = read_until(lines, lambda line: "eval time" in line)
        lines.close()
        assert list(lines) == []

    assert all(isinstance(line, str) and "\n" not in line for line in seen)


def test_follow_logs_can_be_closed_from_another_thread(engine: ContainerEngine, deployed: DeploymentSpec):
    lines = engine.follow_logs(deployed.name, tail=0)
    closer = threading.Timer(0.3, lines.close)
    closer.start()
    began = time.monotonic()

    assert list(lines) == []  # blocked waiting for a line until the other thread closed the stream
    assert time.monotonic() - began < 5
    closer.join()


def test_events_between_two_times_cover_the_lifecycle(engine: ContainerEngine, deploy: Deploy):
    since = time.time()
    spec, _ = deploy()
    engine.wait_healthy(spec.name, timeout_s=HEALTHY_TIMEOUT_S)
    engine.stop(spec.name, timeout=5)
    engine.start(spec.name)
    engine.remove(spec.name)
    until = time.time()

    with engine.events(since=since, until=until) as events:
        mine = [event for event in events if event.name == spec.name]

    actions = [event.action for event in mine]
    assert actions[:2] == ["create", "start"]
    assert actions[-1] == "destroy"
    assert actions.index("die") < actions.index("stop") < len(actions) - 1 - actions[::-1].index("start")
    assert all(event.managed and event.container == f"corral-{spec.name}" for event in mine)
    assert all(since - 1 <= event.time <= until + 1 for event in mine)
    assert next(event for event in mine if event.action == "die").detail is not None  # the exit code


def test_following_events_sees_a_stop_and_closes(engine: ContainerEngine, deployed: DeploymentSpec):
    stopper = threading.Timer(0.3, engine.stop, args=(deployed.name,), kwargs={"timeout": 5})
    with engine.events() as events:
        stopper.start()
        seen = read_until(events, lambda event: event.name == deployed.name and event.action == "die")
    stopper.join()
    assert seen[-1].managed
    assert list(events) == []


# --- containers Corral did not start ---------------------------------------------------------


def test_a_hand_started_llama_server_is_listed_as_unmanaged(
    engine: ContainerEngine,
    run_container: Callable[..., Any],
    llama_server_image: str,
    tiny_model: Path,
):
    port = free_port()
    name = f"hand-made-{uuid.uuid4().hex[:8]}"
    run_container(
        llama_server_image,
        name=name,
        command=["-m", f"/models/{tiny_model.name}", "--host", "127.0.0.1", "--port", str(port)],
        volumes={str(tiny_model.parent): {"bind": "/models", "mode": "ro"}},
    )

    # Its port comes from its command line, as does its model.
    engine.wait_healthy(name, timeout_s=HEALTHY_TIMEOUT_S, remove_on_failure=False)
    info = find(engine, name)

    assert info is not None
    assert (info.managed, info.container, info.spec, info.gpus) == (False, name, None, "none")
    assert (info.model, info.port, info.state) == (f"/models/{tiny_model.name}", port, "running")
    with pytest.raises(DeploymentNotFound, match="not a Corral deployment"):
        engine.spec(name)
    assert engine.stop(name, timeout=5).state == "exited"


def test_a_hand_made_llama_server_that_sets_no_port_is_listed_with_no_port_rather_than_a_guessed_default(
    engine: ContainerEngine, docker_client: docker.DockerClient, llama_server_image: str, tiny_model: Path
):
    name = f"hand-made-{uuid.uuid4().hex[:8]}"
    # Created, not started: llama-server's own default port differs between builds (8080, then 9931).
    container = docker_client.containers.create(
        llama_server_image, name=name, command=["-m", f"/models/{tiny_model.name}"], network_mode="host"
    )
    try:
        info = find(engine, name)
    finally:
        container.remove(force=True)

    assert info is not None
    assert (info.managed, info.port) == (False, None)


# --- GPUs: no NVIDIA runtime here, so the device requests are checked on created containers ---------


@pytest.mark.parametrize(
    ("gpus", "count", "device_ids", "label"), [("all", -1, [], "all"), ((0, 1), 0, ["0", "1"], "0,1")]
)
def test_gpu_device_requests(
    engine: ContainerEngine,
    docker_client: docker.DockerClient,
    deploy: Deploy,
    gpus: Any,
    count: int,
    device_ids: list[str] | None,
    label: str,
):
    spec, info = deploy(create_only=True, gpus=gpus)

    attrs = docker_client.containers.get(info.container).attrs
    [request] = attrs["HostConfig"]["DeviceRequests"]
    assert (request["Count"], request["DeviceIDs"], request["Capabilities"]) == (count, device_ids, [["gpu"]])
    assert "LLAMA_ARG_N_GPU_LAYERS=999" in attrs["Config"]["Env"]
    assert (info.state, info.gpus) == ("created", label)
    with pytest.raises(DeploymentFailed, match=r"could not select device driver.*NVIDIA Container Toolkit"):
        engine.start(spec.name)
    assert engine.info(spec.name).state == "created"  # start keeps an existing deployment as it was


def test_a_gpu_deployment_that_cannot_start_leaves_nothing_behind(
    engine: ContainerEngine, docker_client: docker.DockerClient, deploy: Deploy, make_spec: Callable[..., Any]
):
    spec = make_spec(gpus="all")

    with pytest.raises(DeploymentFailed, match=r"could not start: .*could not select device driver"):
        deploy(spec=spec)

    assert docker_client.containers.list(all=True, filters={"name": f"corral-{spec.name}"}) == []


# --- refusals, before anything is created ------------------------------------------------------


def assert_nothing_created(docker_client: docker.DockerClient, spec: DeploymentSpec) -> None:
    assert docker_client.containers.list(all=True, filters={"name": f"^/corral-{spec.name}$"}) == []


def test_a_missing_image_is_refused_with_how_to_get_it(
    docker_client: docker.DockerClient, deploy: Deploy, make_spec: Callable[..., Any]
):
    spec = make_spec(image="corral-testbed/does-not-exist:1")

    with pytest.raises(DeploymentFailed, match=r"docker pull corral-testbed/does-not-exist:1.*docker load"):
        deploy(spec=spec)
    assert_nothing_created(docker_client, spec)


def test_a_port_in_use_is_refused(docker_client: docker.DockerClient, deploy: Deploy, make_spec: Callable[..., Any]):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        spec = make_spec(port=holder.getsockname()[1])

        with pytest.raises(DeploymentConflict, match=f"port {spec.port} is already in use on 127.0.0.1"):
            deploy(spec=spec)
    assert_nothing_created(docker_client, spec)


def test_a_port_another_deployment_owns_is_refused_even_when_it_is_stopped(
    deploy: Deploy, make_spec: Callable[..., Any]
):
    first, _ = deploy(create_only=True)

    with pytest.raises(DeploymentConflict, match=f"port {first.port} is already assigned to deployment {first.name}"):
        deploy(spec=make_spec(port=first.port))


def test_a_duplicate_name_is_refused(deploy: Deploy, make_spec: Callable[..., Any]):
    first, _ = deploy(create_only=True)

    with pytest.raises(DeploymentConflict, match=f"container named corral-{first.name} already exists"):
        deploy(spec=make_spec(name=first.name))


def test_a_missing_model_file_is_refused(
    docker_client: docker.DockerClient, deploy: Deploy, make_spec: Callable[..., Any], tmp_path: Path
):
    spec = make_spec(model_path=str(tmp_path / "absent.gguf"))

    with pytest.raises(DeploymentFailed, match=r"model file .*absent\.gguf does not exist"):
        deploy(spec=spec)
    assert_nothing_created(docker_client, spec)


# --- deployments that never become healthy ---------------------------------------------------


def test_a_server_that_exits_at_once_fails_with_its_logs_and_is_removed(
    engine: ContainerEngine, docker_client: docker.DockerClient, deploy: Deploy
):
    spec, _ = deploy(extra_args=("--no-such-flag",))

    with pytest.raises(DeploymentFailed, match="did not become healthy: it exited") as failure:
        engine.wait_healthy(spec.name, timeout_s=HEALTHY_TIMEOUT_S)

    assert "--no-such-flag" in failure.value.logs
    assert "--no-such-flag" in str(failure.value)
    assert_nothing_created(docker_client, spec)


def test_a_failed_deployment_can_be_kept_for_inspection(engine: ContainerEngine, deploy: Deploy):
    spec, _ = deploy(extra_args=("--no-such-flag",))

    with pytest.raises(DeploymentFailed, match="stopped and kept"):
        engine.wait_healthy(spec.name, timeout_s=HEALTHY_TIMEOUT_S, remove_on_failure=False)

    info = find(engine, spec.name)
    assert info is not None
    assert info.state == "exited"
    assert info.exit_code not in (None, 0)
    assert "--no-such-flag" in engine.logs(spec.name)


def test_a_server_that_never_answers_on_its_port_times_out(
    engine: ContainerEngine, docker_client: docker.DockerClient, deploy: Deploy
):
    # llama-server's command line overrides LLAMA_ARG_PORT, so it listens elsewhere.
    spec, _ = deploy(extra_args=("--port", str(free_port())))
    began = time.monotonic()

    with pytest.raises(DeploymentFailed, match=r"did not answer 200 within 1\.5 s.*removed") as failure:
        engine.wait_healthy(spec.name, timeout_s=1.5)

    assert time.monotonic() - began < 10
    assert "listening on" in failure.value.logs
    assert_nothing_created(docker_client, spec)


def test_an_unreachable_engine_says_what_to_check():
    with pytest.raises(EngineUnavailable, match=r"at unix:///nonexistent\.sock: .*is dockerd running\?"):
        ContainerEngine.connect("unix:///nonexistent.sock")
