"""What the admin API answers about the box's GPUs and its llama-server fleet, as JSON on the wire.

Producers: fleet/gpus.py (`GpuSnapshot.to_dict`), fleet/inventory.py (`ContainerInfo`, `ContainerEvent`),
fleet/manager.py (inventory, plan, deploy), fleet/vram.py, fleet/models.py (the catalog) and api/fleet.py.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# -- GPUs (GET /gpus, the snapshot's "gpus", the "gpus" event) --------------------------------------------


class GpuProcessView(TypedDict):
    pid: int
    name: str  # from /proc/<pid>/comm; "" when the process lives in another PID namespace
    used_memory_bytes: int | None


class GpuDeviceView(TypedDict):
    index: int
    uuid: str
    name: str
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    utilization_percent: int | None
    temperature_c: int | None
    power_draw_watts: float | None
    power_limit_watts: float | None
    fan_percent: int | None
    processes: list[GpuProcessView]
    unsupported: list[str]  # the readings this device does not support (their values are None), sorted


class GpuSnapshotView(TypedDict):
    state: Literal["ok", "unavailable"]
    reason: str  # why it is unavailable; "" when ok
    driver_version: str
    devices: list[GpuDeviceView]
    sampled_at: float


# -- deployments ------------------------------------------------------------------------------------------


class LoadPolicyView(TypedDict):
    """`LoadPolicy` (fleet/load_policy.py): always up, or started on demand and stopped when idle."""

    mode: Literal["always", "on-demand"]
    idle_ttl_s: float
    pin: bool
    priority: int
    load_timeout_s: float


class RouterSpecView(TypedDict):
    """A router-mode deployment: llama-server with `--models-dir` (the spec's model_path is that directory)."""

    models_max: int  # --models-max: models loaded at once (0: no limit)


class DeploymentSpecView(TypedDict):
    """`DeploymentSpec.model_dump(mode="json")`: what a deployment runs, whatever runs it."""

    name: str
    kind: Literal["container", "systemd"]
    model_path: str
    image: str
    gpus: Literal["all"] | list[int] | None
    ctx_size: int
    n_gpu_layers: int
    parallel: int
    port: int
    host: str
    extra_args: list[str]
    load: LoadPolicyView
    router: RouterSpecView | None  # None: one model (model_path is its GGUF)


class ContainerView(TypedDict):
    """One llama-server container on the engine, Corral's own (managed) or not."""

    name: str  # the deployment name for managed containers, else the container name
    container: str
    id: str  # short id
    managed: bool
    state: str  # created, running, restarting, paused, exited, dead
    health: str  # healthy, unhealthy, starting, none
    image: str
    model: str | None
    gpus: str  # "all", "0,1" or "none"
    port: int | None
    started_at: str | None  # ISO 8601
    uptime_s: float | None
    exit_code: int | None
    # The spec from the container's label, managed containers only; read back from Docker, so a label
    # written by another Corral version may hold other fields.
    spec: dict[str, Any] | None


class EngineView(TypedDict):
    state: Literal["ok", "unavailable"]
    reason: str


class FleetView(TypedDict):
    """GET /fleet, the snapshot's "fleet" and the "fleet" event: the engine's state and its containers."""

    engine: EngineView
    deployments: list[ContainerView]


class ContainerEventView(TypedDict):
    """The "container" event: one action on one llama-server container, as the engine reported it."""

    action: str  # start, die, stop, kill, health_status, destroy, create, restart, oom, ...
    name: str
    managed: bool
    time: float
    container: str
    id: str
    detail: str | None  # health_status: "healthy"/"unhealthy"; die: the exit code


# -- planning and deploying -------------------------------------------------------------------------------


class VramEstimateView(TypedDict):
    model: str
    ctx_size: int
    parallel: int
    kv_cache_type: str
    layers: int | None
    weights: int  # bytes
    kv_cache: int
    compute: int
    total: int
    explanation: list[str]
    warnings: list[str]


class PlacementView(TypedDict):
    fits: bool
    gpus: list[int]
    n_gpu_layers: int | None  # None: offload every layer
    reason: str


class PlanReport(TypedDict):
    """How a deployment fits: part of every plan and deploy answer."""

    estimate: VramEstimateView
    placement: PlacementView
    warnings: list[str]


class PlanAnswer(PlanReport):
    """POST /fleet/plan: the filled-in spec and how it fits, without deploying."""

    spec: DeploymentSpecView


class SystemdDeploymentView(TypedDict):
    name: str
    kind: Literal["systemd"]
    spec: DeploymentSpecView


class DeployAnswer(PlanReport):
    """POST /fleet/deployments: the deployment, or for a systemd dry run the commands it would run."""

    deployment: NotRequired[ContainerView | SystemdDeploymentView]
    dry_run: NotRequired[list[str]]


class ComposeImportAnswer(TypedDict):
    deployed: list[str]  # deployment names, in the file's order
    warnings: list[str]


class UnitStatusView(TypedDict):
    """POST /fleet/systemd/{name}/status."""

    unit: str
    active_state: str
    sub_state: str
    main_pid: int | None
    started_at: str | None  # systemd's own timestamp text
    restarts: int
    result: str
    load_state: str
    running: bool


class SystemdActionAnswer(TypedDict):
    """POST /fleet/systemd/{name}/{start|stop|restart}."""

    name: str
    action: str


# -- the GGUF catalog (GET /catalog) ----------------------------------------------------------------------


class GgufModelView(TypedDict):
    path: str
    name: str
    architecture: str
    parameter_count: int
    quantization: str
    context_length: int | None
    layers: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    file_size: int  # bytes, all parts summed
    parts: list[str]


class CatalogProblemView(TypedDict):
    path: str
    message: str


class CatalogScanView(TypedDict):
    models: list[GgufModelView]
    problems: list[CatalogProblemView]


class CatalogAnswer(CatalogScanView):
    directories: list[str]  # the directories scanned


# -- models on demand (fleet/on_demand.py) ----------------------------------------------------------------

OnDemandState = Literal["cold", "loading", "warm", "unloading", "failed"]


class OnDemandView(TypedDict):
    """GET /fleet/on-demand, the snapshot's "on_demand" and the "deployment" event: one deployment Corral starts
    and stops by its load policy (every deployment is listed; an `always` one is warm or failed)."""

    name: str
    kind: Literal["container", "systemd"]
    policy: LoadPolicyView
    state: OnDemandState
    reason: str  # failed: why (its log's last lines); loading: since when; else ""
    in_flight: int  # requests on its provider now
    waiting: int  # requests waiting for it to load
    last_used_at: float | None  # wall clock: the last request routed to it ended or began
    last_loaded_at: float | None  # wall clock: the last load finished
    last_load_s: float | None  # how long the last load took, start to /health 200
    measured_memory_bytes: int | None  # what NVML last measured its process using, all its GPUs together
    estimated_memory_bytes: int | None  # the GGUF VRAM estimate for its spec
    gpus: list[int]  # the GPU indices it runs on ([] for CPU)


class DeploymentRemoved(TypedDict):
    """The "deployment.removed" event: a deployment OnDemand kept is gone (removed, or its container deleted)."""

    name: str


class LoadDecisionView(TypedDict):
    """The "fleet.decision" event, also logged: what was started or stopped and why, or why not."""

    at: float
    action: Literal["start", "stop", "refuse"]
    deployment: str  # what was started, stopped or refused
    reason: str  # in words: "a request for 'b' arrived", "idle for 10m", "to make room for 'b' on GPU 0 (...)"
    for_deployment: str | None  # stop: the deployment whose start needed the memory
    gpus: list[int]
    need_bytes: int | None  # start and refuse: what the model needs, margin included
    free_bytes: int | None  # start and refuse: what its GPUs had free when decided
