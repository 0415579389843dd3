"""Dashboard test data in the daemon's exact shapes, and a harness app that feeds it to the screen.

The factories are typed on the wire contracts and mypy checks this file (pyproject.toml, [tool.mypy] files):
a field the daemon adds, renames or retypes is a type error here, not a dashboard test that passes on a shape
the daemon no longer sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from textual.app import App
from textual.message import Message
from textual.pilot import Pilot

from console.live_state import LiveState
from console.screens.dashboard import DashboardScreen
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from console.widgets.live_table import LiveTable
from gateway_core.contracts.events import EventKind, EventPayload
from gateway_core.contracts.fleet_views import (
    ContainerView,
    FleetView,
    GpuDeviceView,
    GpuProcessView,
    GpuSnapshotView,
    LoadDecisionView,
    OnDemandState,
    OnDemandView,
)
from gateway_core.contracts.history_views import (
    ArchiveStatusView,
    HistoryDetailView,
    HistoryRowView,
    UsageBucket,
    UsageDimension,
    UsagePoint,
    UsageSeries,
    UsageView,
)
from gateway_core.contracts.jobs import JobCounts
from gateway_core.contracts.views import (
    KeyView,
    LiveRequestView,
    ProviderState,
    ProviderType,
    ProviderView,
    RouterModelStatus,
    Snapshot,
)
from gateway_core.fleet.units import GiB

NOW = 1_760_000_000.0  # every clock in these tests: uptimes and "last used" render the same on every run


# -- event data with the daemon's exact shapes ------------------------------------------------------------


def provider(
    name: str,
    *,
    state: ProviderState = "ready",
    capacity: int = 4,
    models: tuple[str, ...] = ("tiny",),
    type: ProviderType = "llama-server",
    requests: int = 0,
    errors: int = 0,
    latency_p50_s: float | None = None,
) -> ProviderView:
    """Like ProviderRuntime.summary()."""
    return {
        "name": name,
        "type": type,
        "base_url": "http://127.0.0.1:8080",
        "api_key_env": None,
        "models": {model: model for model in models},
        "priority": 0,
        "weight": 1,
        "max_concurrency": None,
        "gpus": None,
        "enabled": state != "disabled",
        "draining": state in ("draining", "drained"),
        "api_key_hint": None,
        "state": state,
        "health_detail": "",
        "capacity": capacity,
        "in_flight": 0,
        "busy_slot_seconds": 0.0,
        "circuit": "closed",
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "latency_p50_s": latency_p50_s,
        "last_probe_at": NOW - 5,
        "router_models": None,
    }


def key(
    key_id: str,
    name: str,
    *,
    models: list[str] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    max_concurrency: int | None = None,
    expires_at: float | None = None,
    revoked: bool = False,
    last_used_at: float | None = None,
    requests_last_minute: int = 0,
    tokens_last_minute: int = 0,
) -> KeyView:
    """Like the admin API's key view (GET /keys, the "key" event)."""
    return {
        "id": key_id,
        "name": name,
        "models": models,
        "rpm": rpm,
        "tpm": tpm,
        "max_concurrency": max_concurrency,
        "expires_at": expires_at,
        "revoked": revoked,
        "created_at": NOW - 86400,
        "last_used_at": last_used_at,
        "expired": expires_at is not None and expires_at <= NOW,
        "capture": None,
        "usage": {
            "in_flight": 0,
            "requests_last_minute": requests_last_minute,
            "tokens_last_minute": tokens_last_minute,
        },
    }


def request(
    request_id: str,
    *,
    provider: str = "gpu0",
    model: str = "tiny",
    key_name: str = "app",
    started_at: float = NOW - 3,
    completion_tokens: int = 0,
    tokens_per_s: float | None = None,
) -> LiveRequestView:
    """Like LiveRequest.view()."""
    return {
        "id": request_id,
        "key_id": "k-" + key_name,
        "key_name": key_name,
        "model": model,
        "provider": provider,
        "route": "chat",
        "stream": True,
        "started_at": started_at,
        "elapsed_s": round(NOW - started_at, 3),
        "completion_tokens": completion_tokens,
        "tokens_per_s": tokens_per_s,
    }


def gpu(
    index: int,
    *,
    name: str = "NVIDIA H100 80GB HBM3",
    used_gib: float = 20.0,
    total_gib: float = 80.0,
    utilization: int | None = 42,
    temperature: int | None = 55,
    power: float | None = 250.0,
    power_limit: float | None = 700.0,
    processes: tuple[tuple[int, str, float], ...] = (),
    unsupported: tuple[str, ...] = (),
) -> GpuDeviceView:
    """One entry of GpuSnapshot.to_dict()["devices"]."""
    running: list[GpuProcessView] = [
        {"pid": pid, "name": process_name, "used_memory_bytes": int(mem * GiB)} for pid, process_name, mem in processes
    ]
    return {
        "index": index,
        "uuid": f"GPU-{index:04d}",
        "name": name,
        "memory_total_bytes": int(total_gib * GiB),
        "memory_used_bytes": int(used_gib * GiB),
        "utilization_percent": utilization,
        "temperature_c": temperature,
        "power_draw_watts": power,
        "power_limit_watts": power_limit,
        "fan_percent": None,
        "processes": running,
        "unsupported": sorted(unsupported),
    }


def gpus(*devices: GpuDeviceView) -> GpuSnapshotView:
    """Like GpuSnapshot.to_dict()."""
    return {"state": "ok", "reason": "", "driver_version": "550.54.15", "devices": list(devices), "sampled_at": NOW}


def no_gpus(reason: str) -> GpuSnapshotView:
    return {"state": "unavailable", "reason": reason, "driver_version": "", "devices": [], "sampled_at": NOW}


def deployment(
    name: str,
    *,
    state: str = "running",
    health: str = "healthy",
    gpus: str = "0",
    port: int = 8081,
    up_s: float = 3723.0,
    model: str = "/models/tiny.gguf",
) -> ContainerView:
    """Like ContainerInfo.to_dict()."""
    running = state == "running"
    return {
        "name": name,
        "container": f"corral-{name}",
        "id": "3f2a9c1b7d10",
        "managed": True,
        "state": state,
        "health": health,
        "image": "corral/llama-server:local",
        "model": model,
        "gpus": gpus,
        "port": port,
        "started_at": datetime.fromtimestamp(NOW - up_s, tz=UTC).isoformat(),
        "uptime_s": up_s if running else None,
        "exit_code": None if running else 1,
        "spec": None,
    }


def fleet(*deployments: ContainerView) -> FleetView:
    return {"engine": {"state": "ok", "reason": ""}, "deployments": list(deployments)}


def archive_status(
    *,
    state: Literal["ok", "off", "failing", "dropping"] = "ok",
    dropped: int = 0,
    last_error: str | None = None,
    written: int = 0,
) -> ArchiveStatusView:
    """Like the archive's status(): GET /archive, the snapshot's `archive`, the "archive" event."""
    return {
        "state": state,
        "capture": "full",
        "directory": "/var/lib/corral/archive",
        "queued": 0,
        "written": written,
        "dropped": dropped,
        "last_error": last_error,
        "retain_months": None,
        "months": ["2025-10"],
    }


def snapshot(
    *,
    providers: Sequence[ProviderView] = (),
    keys: Sequence[KeyView] = (),
    requests: Sequence[LiveRequestView] = (),
    gpu_data: GpuSnapshotView | None = None,
    fleet_data: FleetView | None = None,
    archive: ArchiveStatusView | None = None,
    jobs: JobCounts | None = None,
    on_demand: Sequence[OnDemandView] = (),
) -> Snapshot:
    """Like the admin API's snapshot(): status_view() plus keys, requests, gpus and fleet."""
    return {
        "version": "0.1.0",
        "started_at": NOW - 7380,
        "uptime_s": 7380.0,
        "providers": list(providers),
        "keys": list(keys),
        "models": {},
        "requests_in_flight": len(requests),
        "requests": list(requests),
        "gpus": gpu_data or no_gpus("no NVIDIA driver: libnvidia-ml.so.1 was not found"),
        "fleet": fleet_data or fleet(),
        "archive": archive or archive_status(),
        "jobs": jobs or {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0},
        "on_demand": list(on_demand),
    }


def busy_box() -> Snapshot:
    """A small, fixed gateway: two GPUs, two deployments, three providers, three keys, three requests."""
    return snapshot(
        providers=[
            provider("gpu0", capacity=4, models=("qwen2.5-7b",), requests=120, errors=1, latency_p50_s=0.84),
            provider("gpu1", state="loading", capacity=2, models=("llama3-8b",)),
            provider(
                "openai",
                type="openai",
                state="circuit_open",
                capacity=16,
                models=("gpt-4o-mini", "gpt-4o"),
                requests=40,
                errors=8,
                latency_p50_s=1.6,
            ),
        ],
        keys=[
            key(
                "a1b2c3d4e5f6",
                "webapp",
                rpm=60,
                tpm=100_000,
                last_used_at=NOW - 12,
                requests_last_minute=14,
                tokens_last_minute=5230,
            ),
            key(
                "0f9e8d7c6b5a",
                "batch",
                models=["qwen2.5-7b"],
                max_concurrency=2,
                expires_at=NOW + 86400 * 10,
                last_used_at=NOW - 3600,
            ),
            key("112233445566", "old-ci", revoked=True),
        ],
        requests=[
            request(
                "req-1",
                provider="gpu0",
                model="qwen2.5-7b",
                key_name="webapp",
                started_at=NOW - 4,
                completion_tokens=180,
                tokens_per_s=45.2,
            ),
            request(
                "req-2",
                provider="gpu0",
                model="qwen2.5-7b",
                key_name="batch",
                started_at=NOW - 75,
                completion_tokens=2400,
                tokens_per_s=32.0,
            ),
            request("req-3", provider="openai", model="gpt-4o-mini", key_name="webapp", started_at=NOW - 1),
        ],
        gpu_data=gpus(
            gpu(0, used_gib=9.6, utilization=87, temperature=71, power=512.0, processes=((4242, "llama-server", 9.1),)),
            gpu(
                1,
                name="NVIDIA L4",
                used_gib=3.2,
                total_gib=24.0,
                utilization=None,
                temperature=None,
                power=None,
                power_limit=None,
                unsupported=("power_draw", "power_limit", "temperature", "utilization"),
            ),
        ),
        fleet_data=fleet(
            deployment("gpu0", model="/models/qwen2.5-7b-instruct-q4_k_m.gguf"),
            deployment("gpu1", gpus="1", port=8082, health="starting", up_s=40, model="/models/llama3-8b-q8_0.gguf"),
        ),
    )


# -- reading what the dashboard shows ---------------------------------------------------------------------


def cell(table: LiveTable, row_key: str, column_key: str) -> str:
    return str(table.get_cell(row_key, column_key))


def row_keys(table: LiveTable) -> list[str]:
    return table.row_keys


async def settle(pilot: Pilot[None]) -> None:
    """Let the first render (after mount) and any focus moves happen."""
    await pilot.pause()
    await pilot.pause()


class DashboardHarness(App[None]):
    """The ConsoleHost protocol, with no daemon: tests feed LiveState and tell the screen what changed."""

    def __init__(self, data: Snapshot | None = None, now: Callable[[], float] = lambda: NOW) -> None:
        super().__init__()
        self.live = LiveState()
        self.client = None
        self.posted: list[Message] = []
        self.data = data
        self.dashboard = DashboardScreen(now=now)

    def on_mount(self) -> None:
        theme = load_theme(builtin_themes_dir() / "corral-dark.yaml")
        self.register_theme(theme)
        self.theme = theme.name
        if self.data is not None:
            self.live.apply("snapshot", self.data)
        self.push_screen(self.dashboard)

    def feed(self, kind: EventKind, data: EventPayload) -> set[str]:
        changed = self.live.apply(kind, data)
        self.dashboard.live_changed(self.live, changed)
        return changed

    def on_dashboard_screen_cancel_request(self, message: DashboardScreen.CancelRequest) -> None:
        self.posted.append(message)

    def on_dashboard_screen_action_requested(self, message: DashboardScreen.ActionRequested) -> None:
        self.posted.append(message)


# -- the archive: history rows, one request, usage over time ----------------------------------------------


def history_row(
    request_id: str,
    *,
    started_at: float = NOW - 60,
    key_name: str | None = "webapp",
    model: str | None = "qwen2.5-7b",
    provider: str | None = "gpu0",
    status: int = 200,
    prompt_tokens: int | None = 12,
    completion_tokens: int | None = 180,
    latency_s: float = 0.84,
    ttft_s: float | None = 0.12,
    energy_joules: float | None = 310.0,
    stream: bool = True,
) -> HistoryRowView:
    """Like one of GET /history's rows."""
    error = status >= 400
    return {
        "id": request_id,
        "source": "public",
        "route": "chat",
        "started_at": started_at,
        "first_token_at": started_at + ttft_s if ttft_s is not None else None,
        "ended_at": started_at + latency_s,
        "key_id": "a1b2c3d4e5f6" if key_name else None,
        "key_name": key_name,
        "model": model,
        "provider": provider,
        "upstream_model": model,
        "status": status,
        "error_code": "rate_limited" if status == 429 else None,
        "error_message": "key webapp is over its 60 requests per minute" if status == 429 else None,
        "providers_tried": [provider] if provider else [],
        "prompt_tokens": None if error else prompt_tokens,
        "completion_tokens": None if error else completion_tokens,
        "latency_s": latency_s,
        "ttft_s": None if error else ttft_s,
        "tokens_per_s": None if error or completion_tokens is None else 214.3,
        "stream": stream,
        "client_address": "127.0.0.1",
        "bytes_in": 420,
        "bytes_out": 2210,
        "capture": "full",
        "gpu_seconds": None if energy_joules is None else 0.62,
        "energy_joules": None if error else energy_joules,
    }


def history_detail(
    row: HistoryRowView,
    *,
    request_body: str | None = '{"model":"qwen2.5-7b","messages":[{"role":"user","content":"Say hi in **bold**"}]}',
    response_body: str | None = "Hello! **Hi** there.\n\n- one\n- two",
    response_format: Literal["json", "text"] | None = "text",
    response_truncated: bool = False,
) -> HistoryDetailView:
    """Like GET /history/{id}."""
    return {
        **row,
        "request_body": request_body,
        "request_bytes": len(request_body) if request_body is not None else None,
        "request_truncated": False,
        "response_body": response_body,
        "response_format": response_format if response_body is not None else None,
        "response_bytes": (len(response_body) * (4 if response_truncated else 1))
        if response_body is not None
        else None,
        "response_truncated": response_truncated,
    }


def usage_point(
    bucket_start: float, requests: int, *, errors: int = 0, gpu: bool = True, latency_p50_s: float | None = 0.8
) -> UsagePoint:
    """Like one bucket of a GET /usage series."""
    return {
        "bucket_start": bucket_start,
        "requests": requests,
        "errors": errors,
        "errors_by_class": {"upstream": errors} if errors else {},
        "prompt_tokens": requests * 40,
        "completion_tokens": requests * 160,
        "latency_p50_s": latency_p50_s if requests else None,
        "latency_p95_s": latency_p50_s * 2.5 if requests and latency_p50_s else None,
        "ttft_p50_s": 0.12 if requests else None,
        "ttft_p95_s": 0.3 if requests else None,
        "tokens_per_s": 48.5 if requests else None,
        "gpu_seconds": requests * 0.6 if gpu and requests else None,
        "energy_joules": requests * 180.0 if gpu and requests else None,
    }


def usage_series(group: str, counts: Sequence[int], *, since: float, gpu: bool = True, errors: int = 0) -> UsageSeries:
    """One group's day buckets from `since`, and its total."""
    points = [usage_point(since + 86400 * day, n, gpu=gpu, errors=errors if n else 0) for day, n in enumerate(counts)]
    total = usage_point(since, sum(counts), gpu=gpu, errors=errors * sum(1 for n in counts if n))
    return {"group": group, "group_id": None, "points": [p for p in points if p["requests"]], "total": total}


DAY0 = NOW - NOW % 86400 - 6 * 86400  # a week of day buckets ending on NOW's day


def usage_view(*, by: UsageDimension = "model", bucket: UsageBucket = "day") -> UsageView:
    """Like GET /usage: a local model with GPU figures, a hosted one with none, busiest first."""
    return {
        "by": by,
        "bucket": bucket,
        "since": DAY0,
        "until": NOW,
        "series": [
            usage_series("qwen2.5-7b", [120, 340, 280, 510, 460, 390, 220], since=DAY0, errors=2),
            usage_series("gpt-4o-mini", [40, 0, 75, 90, 30, 60, 10], since=DAY0, gpu=False),
        ],
    }


# -- models on demand and router mode ---------------------------------------------------------------------


def on_demand_view(
    name: str,
    *,
    state: OnDemandState = "warm",
    mode: Literal["always", "on-demand"] = "on-demand",
    pin: bool = False,
    priority: int = 0,
    reason: str = "",
    in_flight: int = 0,
    waiting: int = 0,
    last_used_at: float | None = NOW - 180,
    last_loaded_at: float | None = NOW - 3600,
    last_load_s: float | None = 4.2,
    measured_gib: float | None = 5.1,
    estimated_gib: float | None = 5.4,
    gpus: tuple[int, ...] = (0,),
    kind: Literal["container", "systemd"] = "container",
) -> OnDemandView:
    """Like OnDemand.view(): GET /fleet/on-demand, the snapshot's on_demand, the "deployment" event."""
    return {
        "name": name,
        "kind": kind,
        "policy": {"mode": mode, "idle_ttl_s": 600.0, "pin": pin, "priority": priority, "load_timeout_s": 120.0},
        "state": state,
        "reason": reason,
        "in_flight": in_flight,
        "waiting": waiting,
        "last_used_at": last_used_at,
        "last_loaded_at": last_loaded_at,
        "last_load_s": last_load_s,
        "measured_memory_bytes": None if measured_gib is None else int(measured_gib * GiB),
        "estimated_memory_bytes": None if estimated_gib is None else int(estimated_gib * GiB),
        "gpus": list(gpus),
    }


def decision(
    deployment: str,
    action: Literal["start", "stop", "refuse"],
    reason: str,
    *,
    at: float = NOW,
    for_deployment: str | None = None,
    need_gib: float | None = None,
    free_gib: float | None = None,
) -> LoadDecisionView:
    """Like the "fleet.decision" event's payload."""
    return {
        "at": at,
        "action": action,
        "deployment": deployment,
        "reason": reason,
        "for_deployment": for_deployment,
        "gpus": [0],
        "need_bytes": None if need_gib is None else int(need_gib * GiB),
        "free_bytes": None if free_gib is None else int(free_gib * GiB),
    }


def router_provider(name: str, models: Sequence[tuple[str, RouterModelStatus, str]]) -> ProviderView:
    """A router-mode llama-server (--models-dir): its models and the status its GET /models gives each."""
    view = provider(name, capacity=4, models=tuple(model for model, _, _ in models))
    view["router_models"] = [{"id": model, "status": status, "detail": detail} for model, status, detail in models]
    return view


FAILED_LOG = (
    "llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within the file bounds\n"
    "llama_load_model_from_file: failed to load model\n"
    "main: exiting due to model loading error"
)


def on_demand_box() -> Snapshot:
    """One GPU with four on-demand deployments (warm, loading, cold, failed) and a router-mode llama-server."""
    return snapshot(
        providers=[
            provider("chat-7b", models=("qwen2.5-7b",), requests=42, latency_p50_s=0.61),
            router_provider(
                "router",
                [
                    ("gemma-2b", "loaded", ""),
                    ("llama-8b", "loading", ""),
                    ("phi-3", "sleeping", ""),
                    ("qwen-0.5b", "unloaded", ""),
                    ("broken", "failed", "exit code 1"),
                ],
            ),
        ],
        gpu_data=gpus(gpu(0, used_gib=14.2, processes=((4242, "llama-server", 5.1), (4343, "llama-server", 8.6)))),
        fleet_data=fleet(
            deployment("chat-7b", model="/models/qwen2.5-7b-instruct-q4_k_m.gguf"),
            deployment("coder-14b", health="starting", port=8082, up_s=6, model="/models/qwen2.5-coder-14b.gguf"),
            deployment("embed", state="exited", health="none", port=8083, model="/models/nomic-embed-text-v1.5.gguf"),
            deployment("vision", state="exited", health="none", port=8084, model="/models/llava-1.6-7b.gguf"),
        ),
        on_demand=[
            on_demand_view("chat-7b"),
            on_demand_view(
                "coder-14b",
                state="loading",
                pin=True,
                waiting=2,
                reason="since 10:13:14",
                last_used_at=None,
                last_loaded_at=None,
                last_load_s=None,
                measured_gib=None,
                estimated_gib=9.8,
            ),
            on_demand_view(
                "embed", state="cold", last_used_at=NOW - 7200, last_load_s=1.3, measured_gib=0.6, estimated_gib=0.7
            ),
            on_demand_view(
                "vision", state="failed", reason=FAILED_LOG, last_used_at=NOW - 40, last_load_s=None, measured_gib=None
            ),
        ],
    )
