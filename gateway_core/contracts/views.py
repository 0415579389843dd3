"""What the admin API answers about providers, keys, requests and the daemon, as JSON on the wire.

The same views travel in the event stream (contracts/events.py), so the console's live state and the
`corral` CLI read one shape whichever way they got it. Producers: providers/config.py and runtime.py,
gateway/keys.py, limits.py and accounting.py, api/admin.py.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from gateway_core.contracts.archive import CaptureMode
from gateway_core.contracts.fleet_views import FleetView, GpuSnapshotView, OnDemandView
from gateway_core.contracts.history_views import ArchiveStatusView
from gateway_core.contracts.jobs import JobCounts

ProviderType = Literal["llama-server", "ollama", "openai", "anthropic"]
# What the last probe found.
Health = Literal["unknown", "ready", "loading", "down"]
CircuitState = Literal["closed", "open", "half_open"]
# What operators see: the health, unless the provider is disabled, drained for maintenance (draining while
# requests it took still run, drained once none does) or its circuit is open.
ProviderState = Literal["disabled", "draining", "drained", "ready", "loading", "down", "circuit_open", "unknown"]

# -- providers --------------------------------------------------------------------------------------------


class ProviderPublicView(TypedDict):
    """`ProviderConfig.public_view()`: the configuration, never the upstream key."""

    name: str
    type: ProviderType
    base_url: str
    api_key_env: str | None
    models: dict[str, str]  # public name -> upstream name, as configured (empty: discovered)
    priority: int
    weight: int
    max_concurrency: int | None
    enabled: bool
    draining: bool  # drained for maintenance (`corral providers drain`): nothing new is sent to it
    gpus: list[int] | None  # this box's GPUs its server runs on, as configured (None: not configured)
    api_key_hint: str | None  # "…abcd", "set", or None when there is no key


RouterModelStatus = Literal["unloaded", "loading", "loaded", "sleeping", "failed"]


class RouterModelView(TypedDict):
    """One model of a router-mode llama-server (`--models-dir`), as its `GET /models` lists it."""

    id: str
    status: RouterModelStatus
    detail: str  # failed: why, when llama-server says; else ""


class ProviderView(ProviderPublicView):
    """`ProviderRuntime.summary()`: GET /providers, the "provider" event. `models` here is what is routed."""

    state: ProviderState
    health_detail: str
    capacity: int
    in_flight: int
    busy_slot_seconds: float  # its slots' use since it was added or changed: in_flight (within capacity) x time
    circuit: CircuitState
    requests: int
    errors: int
    error_rate: float
    latency_p50_s: float | None
    last_probe_at: float | None
    router_models: list[RouterModelView] | None  # a router-mode llama-server's models; None: not a router


class ProbeAnswer(TypedDict):
    """POST /providers/{name}/test and POST /providers/test: what a probe found now."""

    name: str
    health: Health
    detail: str
    models: dict[str, str]
    capacity: int | None
    raw_detail: NotRequired[str]  # the transport error as its library put it, when that is what failed


class ProviderRemoved(TypedDict):
    """The "provider.removed" event."""

    name: str


# -- keys -------------------------------------------------------------------------------------------------


class KeyPublicView(TypedDict):
    """`ApiKey.public_view()`: a key without its secret's hash."""

    id: str
    name: str
    models: list[str] | None  # None: every model
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None
    expires_at: float | None
    revoked: bool
    created_at: float
    last_used_at: float | None
    expired: bool
    capture: CaptureMode | None  # what the archive keeps of its requests; None: the gateway's setting


class KeyUsage(TypedDict):
    """`RateLimiter.usage()`: in flight now, and what the last minute counted."""

    in_flight: int
    requests_last_minute: int
    tokens_last_minute: int


class KeyView(KeyPublicView):
    """GET /keys, the "key" event."""

    usage: KeyUsage


class CreatedKey(KeyView):
    """POST /keys: the view, the full key and its webhook secret (`whsec_…`, signs its callbacks), shown this once."""

    key: str
    webhook_secret: str


class KeyRemoved(TypedDict):
    """The "key.removed" event."""

    id: str


# -- requests ---------------------------------------------------------------------------------------------


class LiveRequestView(TypedDict):
    """`LiveRequest.view()`: GET /requests, the "request.start" and "request.progress" events."""

    id: str
    key_id: str
    key_name: str
    model: str
    provider: str  # "" until one is chosen
    route: str  # "chat" | "completions" | "embeddings"
    stream: bool
    started_at: float
    elapsed_s: float
    completion_tokens: int
    tokens_per_s: float | None


class RequestEnd(LiveRequestView):
    """The "request.end" event: the request's last view and how it ended."""

    status: int  # the HTTP status the client got; 499 when the client left
    ok: bool
    prompt_tokens: int


# -- the daemon -------------------------------------------------------------------------------------------


class HealthAnswer(TypedDict):
    status: Literal["ok"]
    version: str
    pid: int  # corral-core's process, which `corral daemon stop` signals


class _DaemonView(TypedDict):
    version: str
    started_at: float
    uptime_s: float
    providers: list[ProviderView]
    models: dict[str, list[str]]  # public model name -> the enabled providers serving it
    requests_in_flight: int
    archive: ArchiveStatusView  # the request archive's writer: rows queued, written, dropped


class StatusView(_DaemonView):
    """GET /status."""

    keys: int  # how many keys exist
    pid: int  # corral-core's process id on its box
    data_dir: str
    socket: str | None  # the admin socket it bound (None in-process, where there is none)
    listen: str | None  # the public listener, HOST:PORT as bound (None in-process)


class Snapshot(_DaemonView):
    """The event stream's first event: everything the console shows, at one moment."""

    keys: list[KeyView]
    requests: list[LiveRequestView]
    gpus: GpuSnapshotView
    fleet: FleetView
    jobs: JobCounts  # queued jobs by state; the "job" events move them
    on_demand: list[OnDemandView]  # every deployment's load state; the "deployment" events move them


class CounterView(TypedDict):
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None


class StatsView(TypedDict):
    """GET /stats: counters since `since`, by key name, by model and by provider ("(none)": never routed)."""

    since: float
    key: dict[str, CounterView]
    model: dict[str, CounterView]
    provider: dict[str, CounterView]


# -- small answers ----------------------------------------------------------------------------------------


class Removed(TypedDict):
    """DELETE of a provider, key or deployment: its name (or, for a key, its id)."""

    removed: str


class Cancelled(TypedDict):
    """DELETE /requests/{id}."""

    cancelled: str


# -- telemetry history and GPU processes (api/history_routes.py, fleet/gpu_history.py, fleet/processes.py) -----


class HistoryWindow(TypedDict):
    """The window a history answer covers: `points` buckets of `step_s` seconds each, ending at `end`."""

    minutes: int
    points: int
    step_s: float
    end: float  # Unix seconds


class GpuSeriesView(TypedDict):
    """One GPU's readings over the window, one mean per bucket (oldest first); None: no reading there."""

    index: int
    uuid: str
    name: str
    memory_total_bytes: int | None
    utilization_percent: list[float | None]
    memory_used_bytes: list[int | None]
    power_draw_watts: list[float | None]
    temperature_c: list[float | None]


class GpuHistoryView(HistoryWindow):
    """GET /gpus/history?minutes=M&points=N."""

    interval_s: float  # the sampler's interval: one sample per GPU this often
    devices: list[GpuSeriesView]


class ProviderSeriesView(TypedDict):
    name: str
    requests_per_s: list[float | None]
    tokens_per_s: list[float | None]  # completion tokens


class ProviderHistoryView(HistoryWindow):
    """GET /providers/history?minutes=M&points=N."""

    providers: list[ProviderSeriesView]


class HostView(TypedDict):
    """The box itself, as htop's header shows it."""

    cpu_percent: float
    cpu_count: int
    memory_total_bytes: int
    memory_used_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    load_average: list[float]


ProcessOwnerKind = Literal["container", "unit", "host"]


class ProcessView(TypedDict):
    """One process on a GPU, as nvitop shows it; a reading /proc or NVML does not give is None."""

    gpu_index: int
    pid: int
    user: str | None
    gpu_memory_bytes: int | None
    sm_percent: int | None
    cpu_percent: float | None
    rss_bytes: int | None
    elapsed_s: float | None
    command: str
    owner_kind: ProcessOwnerKind  # from /proc/PID/cgroup: a container, a systemd unit, or neither
    owner: str  # the container's name (or short id), the unit's name, or ""


class ProcessesView(TypedDict):
    """GET /gpus/processes."""

    host: HostView
    processes: list[ProcessView]
    sm_note: str | None  # why SM % is missing, when NVML does not report it
