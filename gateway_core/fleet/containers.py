"""llama-server deployments as Docker containers, through the docker SDK.

Everything here blocks: the daemon calls it from worker threads (`asyncio.to_thread`).
A deployment `NAME` is the container `corral-NAME`, on the host network, configured through
`LLAMA_ARG_*` variables, with the models directory mounted read-only at /models. Its labels hold the
whole `DeploymentSpec`, so the deployments can be rebuilt from the engine alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
from docker.models.containers import Container

from gateway_core.fleet.deployment import CONTAINER_MODELS_DIR, DeploymentSpec
from gateway_core.fleet.inventory import (
    CONTAINER_PREFIX,
    NAME_LABEL,
    PORT_LABEL,
    SPEC_LABEL,
    ClosingStream,
    ContainerEvent,
    ContainerInfo,
    container_name,
    deployment_labels,
    device_requests,
    event_from_docker,
    health_url,
    image_looks_like_llama_server,
    info_from_attrs,
    is_llama_server,
    is_managed,
    log_lines,
    not_running,
    probe_host,
)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
FAILURE_LOG_LINES = 20
_SECOND_NS = 1_000_000_000


class FleetError(RuntimeError):
    """A fleet operation failed; the message says what to do about it."""


class EngineUnavailable(FleetError):
    pass


class DeploymentFailed(FleetError):
    def __init__(self, message: str, logs: str = "") -> None:
        super().__init__(f"{message}\n--- last log lines ---\n{logs}" if logs else message)
        self.logs = logs


class DeploymentNotFound(FleetError):
    pass


class DeploymentConflict(FleetError):
    pass


class ContainerEngine:
    """Deploys, inspects and controls llama-server containers on one Docker engine."""

    def __init__(self, client: docker.DockerClient, *, owns_client: bool = False) -> None:
        self.client = client
        self._owns_client = owns_client

    @classmethod
    def connect(cls, base_url: str | None = None, timeout_s: float = 60.0) -> ContainerEngine:
        """`base_url` such as unix:///var/run/docker.sock; None reads DOCKER_HOST like the docker CLI."""
        where = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        client = None
        try:
            _check_unix_socket(where)
            if base_url:
                client = docker.DockerClient(base_url=base_url, timeout=int(timeout_s))
            else:
                client = docker.from_env(timeout=int(timeout_s))
            client.ping()
        except docker.errors.DockerException as error:
            if client is not None:
                client.close()
            hint = " (does this user have access to the socket, e.g. the docker group?)" if _denied(error) else ""
            raise EngineUnavailable(
                f"cannot reach the Docker engine at {where}: {error}; is dockerd running?{hint}"
            ) from error
        return cls(client, owns_client=True)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> ContainerEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- deploying ---------------------------------------------------------------------------

    def deploy(
        self, spec: DeploymentSpec, *, create_only: bool = False, extra_labels: dict[str, str] | None = None
    ) -> ContainerInfo:
        """Create and start the container for `spec`; every check runs before anything is created.

        `create_only` leaves it created but not started. If the engine cannot start it, the container
        is removed and `DeploymentFailed` carries the engine's message: nothing is left half-made.
        """
        self._check_can_deploy(spec)
        name = CONTAINER_PREFIX + spec.name
        try:
            container = self.client.containers.create(**self._create_options(spec, extra_labels or {}))
        except docker.errors.APIError as error:
            if error.status_code == 409:
                raise DeploymentConflict(f"a container named {name} already exists: {_explain(error)}") from error
            raise DeploymentFailed(f"the Docker engine refused to create {name}: {_explain(error)}") from error
        if not create_only:
            try:
                container.start()
            except docker.errors.APIError as error:
                self._discard(container)
                raise DeploymentFailed(f"{name} could not start: {_explain(error)}{_start_hint(error)}") from error
        container.reload()
        return info_from_attrs(container.attrs)

    def _check_can_deploy(self, spec: DeploymentSpec) -> None:
        name = CONTAINER_PREFIX + spec.name
        if spec.kind != "container":
            raise DeploymentFailed(f"{spec.name} is a {spec.kind} deployment, not a container one")
        try:
            self.client.images.get(spec.image)
        except docker.errors.ImageNotFound as error:
            raise DeploymentFailed(
                f"image {spec.image} is not on this Docker engine, and Corral never pulls images (often no "
                f"registry is reachable from a GPU box): run `docker pull {spec.image}` where one is, or "
                f"`docker save` it elsewhere and `docker load -i FILE.tar` here"
            ) from error
        if spec.router is not None:
            if not any(Path(spec.model_path).glob("*.gguf")):
                raise DeploymentFailed(
                    f"router mode serves the GGUFs of {spec.model_path}, but it holds none (or is not a directory "
                    f"on this host): put the .gguf files there, one per model, named as the model should be"
                )
        elif not Path(spec.model_path).is_file():
            raise DeploymentFailed(f"model file {spec.model_path} does not exist on this host (or is not a file)")
        try:
            self.client.containers.get(name)
        except docker.errors.NotFound:
            pass
        else:
            raise DeploymentConflict(
                f"a container named {name} already exists: remove it first (`corral fleet remove {spec.name}` "
                f"or `docker rm -f {name}`), or choose another --name"
            )
        self._check_port_free(spec)

    def _check_port_free(self, spec: DeploymentSpec) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"{PORT_LABEL}={spec.port}"}):
            if is_managed(container.labels):
                raise DeploymentConflict(
                    f"port {spec.port} is already assigned to deployment {container.labels.get(NAME_LABEL)} "
                    f"(container {container.name}, {container.status}): choose another --port or remove it"
                )
        if _port_in_use(spec.host, spec.port):
            raise DeploymentConflict(
                f"port {spec.port} is already in use on {spec.host or '0.0.0.0'}: choose another --port "
                f"(`ss -ltnp 'sport = :{spec.port}'` shows which process holds it)"
            )

    def _create_options(self, spec: DeploymentSpec, extra_labels: dict[str, str]) -> dict[str, Any]:
        probe = f"http://{probe_host(spec.host)}:{spec.port}/health"
        options: dict[str, Any] = {
            "name": CONTAINER_PREFIX + spec.name,
            "image": spec.image,
            "environment": spec.container_env(),
            "network_mode": "host",
            "restart_policy": {"Name": "unless-stopped"},
            "labels": {**extra_labels, **deployment_labels(spec)},
            "volumes": {spec.models_dir: {"bind": CONTAINER_MODELS_DIR, "mode": "ro"}},
            "healthcheck": {
                "test": ["CMD", "curl", "-fsS", probe],
                "interval": 10 * _SECOND_NS,
                "timeout": 5 * _SECOND_NS,
                "start_period": 60 * _SECOND_NS,
                "retries": 3,
            },
            "device_requests": device_requests(spec.gpus),
        }
        if spec.extra_args:
            options["command"] = list(spec.extra_args)
        return options

    def wait_healthy(self, name: str, timeout_s: float = 300.0, *, remove_on_failure: bool = True) -> None:
        """Poll llama-server's /health until it answers 200 (it answers 503 while loading the model).

        On failure (the container exits, crash-loops under its restart policy, or `timeout_s` passes)
        the container is REMOVED by default, so a failed deploy leaves nothing behind, and
        `DeploymentFailed` carries its last log lines (`.logs`). With `remove_on_failure=False` it is
        stopped instead and kept for inspection: `inventory()` then shows it exited, with its exit code.
        """
        container = self._container(name)
        url = health_url(container.attrs)
        restarts = int(container.attrs.get("RestartCount") or 0)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=httpx.Timeout(2.0)) as http:
            while True:
                try:
                    container.reload()
                except docker.errors.NotFound as error:
                    raise DeploymentFailed(f"{container.name} was removed while waiting for it") from error
                problem = not_running(container.attrs, restarts)
                if problem:
                    self._fail(container, problem, remove_on_failure)
                if _answers_ok(http, url):
                    return
                if time.monotonic() >= deadline:
                    self._fail(container, f"{url} did not answer 200 within {timeout_s:g} s", remove_on_failure)
                time.sleep(0.1)

    def _fail(self, container: Container, problem: str, remove: bool) -> None:
        try:
            logs = _decode(container.logs(tail=FAILURE_LOG_LINES)).rstrip("\n")
        except docker.errors.NotFound:
            logs = ""
        if remove:
            self._discard(container)
            outcome = "the container was removed"
        else:
            _ignore_gone(lambda: container.stop(timeout=5))
            outcome = f"the container is stopped and kept: `docker logs {container.name}`"
        raise DeploymentFailed(f"{container.name} did not become healthy: {problem}; {outcome}", logs)

    def _discard(self, container: Container) -> None:
        _ignore_gone(lambda: container.remove(force=True))

    # --- inspecting --------------------------------------------------------------------------

    def inventory(self) -> list[ContainerInfo]:
        """Every llama-server container on the engine, Corral's own (`managed`) and any other."""
        containers = self.client.containers.list(all=True, ignore_removed=True)
        infos = [info_from_attrs(c.attrs) for c in containers if is_llama_server(c.attrs)]
        return sorted(infos, key=lambda info: (not info.managed, info.name))

    def llama_server_images(self) -> list[str]:
        """The tags of the engine's local images that look like llama.cpp's server (Corral never pulls one)."""
        tags = {tag for image in self.client.images.list() for tag in image.tags}
        return sorted(tag for tag in tags if image_looks_like_llama_server(tag))

    def info(self, name: str) -> ContainerInfo:
        return info_from_attrs(self._container(name).attrs)

    def main_pid(self, name: str) -> int | None:
        """The host PID of the container's llama-server (its PID 1), to find it in NVML's process list."""
        pid = self._container(name).attrs.get("State", {}).get("Pid")
        return int(pid) if pid else None

    def spec(self, name: str) -> DeploymentSpec:
        """Rebuild a managed deployment's spec from its container's labels."""
        container = self._container(name)
        if not is_managed(container.labels) or SPEC_LABEL not in container.labels:
            raise DeploymentNotFound(f"{container.name} is not a Corral deployment, so it has no spec")
        return DeploymentSpec.model_validate_json(container.labels[SPEC_LABEL])

    def logs(self, name: str, tail: int = 200) -> str:
        return _decode(self._container(name).logs(tail=tail))

    def inspect(self, name: str) -> dict[str, Any]:
        """The engine's whole record of the container (`docker inspect`), for its detail view."""
        return dict(self._container(name).attrs)

    def follow_logs(
        self, name: str, since: datetime | float | None = None, tail: int | None = 200, timestamps: bool = False
    ) -> ClosingStream[str]:
        """New log lines as they are written, after the last `tail` ones (None: all) since `since`; with
        `timestamps`, each line starts with the engine's RFC 3339 time of it and a space.

        It blocks waiting for lines; `close()` ends it, and may be called from another thread.
        """
        options: dict[str, Any] = {
            "stream": True,
            "follow": True,
            "tail": "all" if tail is None else tail,
            "timestamps": timestamps,
        }
        if since is not None and (isinstance(since, datetime) or since > 0):  # docker-py refuses 0: every line
            options["since"] = since
        source = self._container(name).logs(**options)
        return ClosingStream(source, log_lines(source))

    def events(
        self, since: datetime | float | None = None, until: datetime | float | None = None
    ) -> ClosingStream[ContainerEvent]:
        """Lifecycle events of llama-server containers. Without `until` it follows until `close()`."""
        source = self.client.events(  # type: ignore[call-overload]  # stubs say int; floats go through as is
            since=_epoch(since), until=_epoch(until), filters={"type": "container"}, decode=True
        )
        return ClosingStream(source, self._container_events(source))

    def _container_events(self, source: Iterator[dict[str, Any]]) -> Generator[ContainerEvent, None, None]:
        known: dict[str, bool] = {}
        for raw in source:
            event = event_from_docker(raw)
            if event and self._is_llama_event(raw, event.id, known):
                yield event

    def _is_llama_event(self, raw: dict[str, Any], container_id: str, known: dict[str, bool]) -> bool:
        attributes = (raw.get("Actor") or {}).get("Attributes") or {}
        if is_managed(attributes) or image_looks_like_llama_server(attributes.get("image", "")):
            return True
        if container_id not in known:
            try:
                known[container_id] = is_llama_server(self.client.containers.get(container_id).attrs)
            except docker.errors.NotFound:
                known[container_id] = False
        return known[container_id]

    # --- controlling -------------------------------------------------------------------------

    def start(self, name: str) -> ContainerInfo:
        """Start a stopped deployment; if the engine refuses, the container is kept as it was."""
        container = self._container(name)
        try:
            container.start()
        except docker.errors.APIError as error:
            raise DeploymentFailed(
                f"{container.name} could not start: {_explain(error)}{_start_hint(error)}"
            ) from error
        return self._refreshed(container)

    def stop(self, name: str, timeout: int = 10) -> ContainerInfo:
        """SIGTERM, then SIGKILL after `timeout` seconds. The restart policy leaves it stopped."""
        container = self._container(name)
        container.stop(timeout=timeout)
        return self._refreshed(container)

    def restart(self, name: str, timeout: int = 10) -> ContainerInfo:
        container = self._container(name)
        try:
            container.restart(timeout=timeout)
        except docker.errors.APIError as error:
            raise DeploymentFailed(f"{container.name} could not restart: {_explain(error)}") from error
        return self._refreshed(container)

    def remove(self, name: str, force: bool = True) -> None:
        container = self._container(name)
        try:
            container.remove(force=force)
        except docker.errors.APIError as error:
            if error.status_code == 409:
                raise DeploymentConflict(f"{container.name} is running: stop it first, or remove with force") from error
            raise

    def _refreshed(self, container: Container) -> ContainerInfo:
        container.reload()
        return info_from_attrs(container.attrs)

    def _container(self, name: str) -> Container:
        """The deployment `name` (container corral-NAME), or a llama-server container called `name`."""
        for candidate in (CONTAINER_PREFIX + name, name):
            try:
                container = self.client.containers.get(candidate)
            except docker.errors.NotFound:
                continue
            if container_name(container.attrs) == candidate and is_llama_server(container.attrs):
                return container
        raise DeploymentNotFound(
            f"no deployment {name!r}: no llama-server container is named {CONTAINER_PREFIX + name} or {name} "
            f"(`corral fleet list` shows them all)"
        )


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As llama-server does, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise DeploymentFailed(f"cannot listen on {host}:{port}: {error.strerror}") from error
    return False


def _answers_ok(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _epoch(moment: datetime | float | None) -> float | None:
    return moment.timestamp() if isinstance(moment, datetime) else moment


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _explain(error: docker.errors.APIError) -> str:
    return str(error.explanation or error)


def _start_hint(error: docker.errors.APIError) -> str:
    if "could not select device driver" in _explain(error):
        return (
            "; the engine has no NVIDIA runtime: install the NVIDIA Container Toolkit and run "
            "`nvidia-ctk runtime configure --runtime=docker`, or deploy with --gpus none for CPU"
        )
    return ""


def _check_unix_socket(url: str) -> None:
    """Connect once ourselves: the SDK leaks its socket when a Unix socket refuses the connection."""
    if not url.startswith(("unix://", "http+unix://")):
        return
    path = url.split("://", 1)[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5.0)
        try:
            probe.connect(path)
        except OSError as error:
            raise docker.errors.DockerException(f"{error.strerror or error} ({path})") from error


def _denied(error: Exception) -> bool:
    return "permission denied" in str(error).lower()


def _ignore_gone(action: Callable[[], object]) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        action()
