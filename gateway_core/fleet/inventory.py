"""Which containers on a Docker engine are llama-server, and what they serve, read from `docker inspect` data.

Corral's own deployments carry `corral.*` labels. Other llama-server containers (started by hand or
by another tool) are recognised by their image name or command, and described from llama-server's
`LLAMA_ARG_*` environment and command-line flags. Also how the engine's event and log streams read.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from docker.types import CancellableStream, DeviceRequest

from gateway_core.contracts.fleet_views import ContainerEventView, ContainerView
from gateway_core.fleet.deployment import DeploymentSpec

MANAGED_LABEL = "corral.managed"
NAME_LABEL = "corral.name"
MODEL_LABEL = "corral.model"
PORT_LABEL = "corral.port"
GPUS_LABEL = "corral.gpus"
SPEC_LABEL = "corral.spec"
CONTAINER_PREFIX = "corral-"
T = TypeVar("T")
_IMAGE_MARKERS = ("llama.cpp", "llama-server")
_MODEL_FLAGS = ("-m", "--model", "-hf", "--hf-repo", "-mu", "--model-url")
_PORT_FLAGS = ("--port",)
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
_SECOND_NS = 1_000_000_000
_DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    name: str  # the deployment name for managed containers, else the container name
    container: str  # the container name (`corral-<name>` when managed)
    id: str  # short id
    managed: bool
    state: str  # created, running, restarting, paused, exited, dead
    health: str  # healthy, unhealthy, starting, none
    image: str
    model: str | None  # host path for managed deployments; as the container sees it otherwise
    gpus: str  # "all", "0,1" or "none"
    port: int | None
    started_at: str | None  # ISO 8601, None if never started
    uptime_s: float | None  # None unless running
    exit_code: int | None  # None unless exited or dead
    spec: dict[str, Any] | None = None  # the DeploymentSpec as a dict, managed containers only

    def to_dict(self) -> ContainerView:
        return {
            "name": self.name,
            "container": self.container,
            "id": self.id,
            "managed": self.managed,
            "state": self.state,
            "health": self.health,
            "image": self.image,
            "model": self.model,
            "gpus": self.gpus,
            "port": self.port,
            "started_at": self.started_at,
            "uptime_s": self.uptime_s,
            "exit_code": self.exit_code,
            "spec": dict(self.spec) if self.spec is not None else None,
        }


@dataclass(frozen=True, slots=True)
class ContainerEvent:
    action: str  # start, die, stop, kill, health_status, destroy, create, restart, oom, ...
    name: str  # the deployment name for managed containers, else the container name
    managed: bool
    time: float  # seconds since the epoch
    container: str = ""
    id: str = ""
    detail: str | None = None  # health_status: "healthy"/"unhealthy"; die: the exit code

    def to_dict(self) -> ContainerEventView:
        return {
            "action": self.action,
            "name": self.name,
            "managed": self.managed,
            "time": self.time,
            "container": self.container,
            "id": self.id,
            "detail": self.detail,
        }


class ClosingStream(Iterator[T]):
    """Items from a docker stream; `close()` ends it and closes its connection, from any thread."""

    def __init__(self, source: CancellableStream[Any], items: Generator[T, None, None]) -> None:
        self._source = source
        self._items = items

    def __iter__(self) -> ClosingStream[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        self._source.close()  # shuts the socket down, which also wakes a reader blocked in another thread
        # ValueError: still running in the reading thread, which now sees the end of the stream.
        with contextlib.suppress(ValueError):
            self._items.close()

    def __enter__(self) -> ClosingStream[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def log_lines(chunks: Iterator[bytes]) -> Generator[str, None, None]:
    """Text lines from docker log frames, which do not follow line boundaries."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", errors="replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", errors="replace").rstrip("\r")


def is_managed(labels: dict[str, str] | None) -> bool:
    return (labels or {}).get(MANAGED_LABEL) == "true"


def deployment_labels(spec: DeploymentSpec) -> dict[str, str]:
    """What a managed container carries: enough to list it, and the whole spec to rebuild it."""
    gpus = "none" if spec.gpus is None else spec.gpus if spec.gpus == "all" else ",".join(map(str, spec.gpus))
    return {
        MANAGED_LABEL: "true",
        NAME_LABEL: spec.name,
        MODEL_LABEL: spec.model_path,
        PORT_LABEL: str(spec.port),
        GPUS_LABEL: gpus,
        SPEC_LABEL: spec.model_dump_json(),
    }


def image_looks_like_llama_server(image: str) -> bool:
    lowered = image.lower()
    return any(marker in lowered for marker in _IMAGE_MARKERS)


def is_llama_server(attrs: dict[str, Any]) -> bool:
    config = attrs.get("Config") or {}
    if is_managed(config.get("Labels")) or image_looks_like_llama_server(config.get("Image") or ""):
        return True
    return any("llama-server" in part for part in command_line(attrs))


def command_line(attrs: dict[str, Any]) -> list[str]:
    """The process the container runs: entrypoint then arguments."""
    path = attrs.get("Path")
    return ([path] if path else []) + list(attrs.get("Args") or [])


def container_name(attrs: dict[str, Any]) -> str:
    return str(attrs.get("Name") or "").lstrip("/")


def info_from_attrs(attrs: dict[str, Any], now: datetime | None = None) -> ContainerInfo:
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    state = attrs.get("State") or {}
    managed = is_managed(labels)
    started = parse_docker_time(state.get("StartedAt"))
    status = str(state.get("Status") or "unknown")
    uptime_s = (
        round(((now or datetime.now(UTC)) - started).total_seconds(), 3)
        if status == "running" and started is not None
        else None
    )
    return ContainerInfo(
        name=labels.get(NAME_LABEL, "") if managed else container_name(attrs),
        container=container_name(attrs),
        id=str(attrs.get("Id") or "")[:12],
        managed=managed,
        state=status,
        health=str((state.get("Health") or {}).get("Status") or "none"),
        image=str(config.get("Image") or ""),
        model=labels.get(MODEL_LABEL) if managed else _unmanaged_model(attrs),
        gpus=labels.get(GPUS_LABEL, "none") if managed else gpus_from_device_requests(attrs),
        port=_managed_port(labels) if managed else _unmanaged_port(attrs),
        started_at=started.isoformat() if started else None,
        uptime_s=uptime_s,
        exit_code=int(state.get("ExitCode", 0)) if status in ("exited", "dead") else None,
        spec=_spec(labels) if managed else None,
    )


def event_from_docker(event: dict[str, Any]) -> ContainerEvent | None:
    """A container event from the engine's stream; None for the healthcheck's exec_* noise."""
    action, _, detail = str(event.get("Action") or event.get("status") or "").partition(": ")
    if not action or action.startswith("exec_"):
        return None
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    managed = is_managed(attributes)
    name = attributes.get("name", "")
    return ContainerEvent(
        action=action,
        name=attributes.get(NAME_LABEL, name) if managed else name,
        managed=managed,
        time=int(event.get("timeNano") or 0) / _SECOND_NS or float(event.get("time") or 0),
        container=name,
        id=str(actor.get("ID") or event.get("id") or "")[:12],
        detail=detail or attributes.get("exitCode") or attributes.get("signal"),
    )


def probe_host(host: str) -> str:
    """Where to reach a server listening on `host` from this machine."""
    return "127.0.0.1" if host in _WILDCARD_HOSTS else host


def health_url(attrs: dict[str, Any]) -> str:
    info = info_from_attrs(attrs)
    host = (info.spec or {}).get("host", "127.0.0.1")
    return f"http://{probe_host(host)}:{info.port}/health"


def not_running(attrs: dict[str, Any], restarts_before: int) -> str | None:
    """Why a container that should be serving is not; None while it runs."""
    state = attrs.get("State") or {}
    status = state.get("Status")
    if status in ("exited", "dead"):
        return f"it exited with code {state.get('ExitCode')}"
    if status == "restarting" or int(attrs.get("RestartCount") or 0) > restarts_before:
        return f"it exited with code {state.get('ExitCode')} and its restart policy is restarting it"
    if status != "running":
        return f"it is {status}, not running"
    return None


def parse_docker_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds, and "0001-01-01T00:00:00Z" means never."""
    match = _DOCKER_TIME.match(value or "")
    if not match or match.group(1).startswith("0001-"):
        return None
    seconds, fraction, zone = match.groups()
    text = f"{seconds}.{(fraction or '0')[:6].ljust(6, '0')}{'+00:00' if zone == 'Z' else zone}"
    return datetime.fromisoformat(text).astimezone(UTC)


def device_requests(gpus: str | tuple[int, ...] | None) -> list[DeviceRequest]:
    if gpus is None:
        return []
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=[str(index) for index in gpus], capabilities=[["gpu"]])]


def gpus_from_device_requests(attrs: dict[str, Any]) -> str:
    for request in (attrs.get("HostConfig") or {}).get("DeviceRequests") or []:
        capabilities = [cap for group in request.get("Capabilities") or [] for cap in group]
        if "gpu" not in capabilities and request.get("Driver") != "nvidia":
            continue
        if request.get("DeviceIDs"):
            return ",".join(request["DeviceIDs"])
        if request.get("Count") == -1:
            return "all"
        if request.get("Count"):
            return f"count={request['Count']}"
    return "none"


def _spec(labels: dict[str, str]) -> dict[str, Any] | None:
    try:
        spec = json.loads(labels.get(SPEC_LABEL, ""))
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def _managed_port(labels: dict[str, str]) -> int | None:
    value = labels.get(PORT_LABEL, "")
    return int(value) if value.isdigit() else None


def _environment(attrs: dict[str, Any]) -> dict[str, str]:
    pairs = (entry.partition("=") for entry in (attrs.get("Config") or {}).get("Env") or [])
    return {key: value for key, _, value in pairs}


def _flag_value(args: list[str], flags: tuple[str, ...]) -> str | None:
    # The last occurrence wins, as in llama-server's own parser.
    found = None
    for index, arg in enumerate(args):
        name, equals, inline = arg.partition("=")
        if name in flags:
            if equals:
                found = inline
            elif index + 1 < len(args):
                found = args[index + 1]
    return found


def _unmanaged_model(attrs: dict[str, Any]) -> str | None:
    return _flag_value(command_line(attrs), _MODEL_FLAGS) or _environment(attrs).get("LLAMA_ARG_MODEL")


def _unmanaged_port(attrs: dict[str, Any]) -> int | None:
    """The port another tool's llama-server container set; None when it set none (llama-server's own default
    moved from 8080 to 9931 between builds, so no default is assumed)."""
    value = _flag_value(command_line(attrs), _PORT_FLAGS) or _environment(attrs).get("LLAMA_ARG_PORT")
    return int(value) if value is not None and value.isdigit() else None
