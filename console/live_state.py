"""What the console knows about corral-core, rebuilt from the event stream: one snapshot, then deltas.

Pure data, no widgets: `apply` returns which sections changed so screens refresh only those. The sections hold
the daemon's own views, typed by the wire contracts (gateway_core/contracts), so a field the daemon renames
is a type error here rather than an empty cell on the dashboard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from console.job_state import DeliveriesState, JobsState
from gateway_core.contracts.events import EventKind, EventPayload
from gateway_core.contracts.fleet_views import (
    DeploymentRemoved,
    FleetView,
    GpuSnapshotView,
    LoadDecisionView,
    OnDemandView,
)
from gateway_core.contracts.history_views import ArchiveStatusView
from gateway_core.contracts.jobs import DeliveryView, JobView
from gateway_core.contracts.views import (
    KeyRemoved,
    KeyView,
    LiveRequestView,
    ProviderRemoved,
    ProviderView,
    RequestEnd,
    Snapshot,
)

SECTIONS = (
    "status",
    "providers",
    "keys",
    "requests",
    "gpus",
    "fleet",
    "on_demand",
    "decisions",
    "archive",
    "jobs",
    "deliveries",
)
ENDED_KEPT = 4096  # ended requests kept for a rate view to count; bounds memory while no dashboard reads them
DECISIONS_KEPT = 50  # the newest load decisions (starts, stops, refusals) a screen can list
FINISHED_KEPT = 20  # the newest finished requests the live panel keeps below the running ones

# Kinds the console receives and deliberately does not apply. "container": one engine event on a llama-server
# container; the daemon follows each burst of them with a "fleet" event carrying the refreshed inventory, which
# is what the fleet panel shows, so applying both would redraw it twice for the same change.
IGNORED_KINDS: frozenset[EventKind] = frozenset({"container"})


class DaemonStatus(TypedDict):
    """The snapshot's daemon-wide fields; the sections it also carries live in LiveState's own fields."""

    version: str
    started_at: float
    uptime_s: float
    models: dict[str, list[str]]  # public model name -> providers serving it, as of the snapshot
    requests_in_flight: int


def _connecting_gpus() -> GpuSnapshotView:
    return {"state": "unavailable", "reason": "connecting", "driver_version": "", "devices": [], "sampled_at": 0.0}


def _connecting_fleet() -> FleetView:
    return {"engine": {"state": "unavailable", "reason": "connecting"}, "deployments": []}


@dataclass
class LiveState:
    status: DaemonStatus | None = None  # None until the first snapshot
    providers: dict[str, ProviderView] = field(default_factory=dict)  # by name
    keys: dict[str, KeyView] = field(default_factory=dict)  # by id
    requests: dict[str, LiveRequestView] = field(default_factory=dict)  # live requests by id
    gpus: GpuSnapshotView = field(default_factory=_connecting_gpus)
    fleet: FleetView = field(default_factory=_connecting_fleet)
    on_demand: dict[str, OnDemandView] = field(default_factory=dict)  # each managed deployment's load state, by name
    # Load decisions since the console connected, oldest first; `decisions_seen` counts them all, so a screen can
    # tell which arrived since it last looked even once the oldest have gone.
    decisions: deque[LoadDecisionView] = field(default_factory=lambda: deque(maxlen=DECISIONS_KEPT))
    decisions_seen: int = 0
    archive: ArchiveStatusView | None = None  # the request archive's writer; None until the first snapshot
    jobs: JobsState = field(default_factory=JobsState)  # queued jobs: counts by state and the newest few
    deliveries: DeliveriesState = field(default_factory=DeliveriesState)  # callback deliveries since the snapshot
    finished: int = 0  # requests finished since the snapshot
    # The request.end views since a rate view last took them: a request shorter than one redraw is never in
    # `requests` when a screen looks, so rates are counted from these.
    ended: deque[RequestEnd] = field(default_factory=lambda: deque(maxlen=ENDED_KEPT))
    # The newest finished requests, oldest first, for the live panel: one shorter than a redraw is seen there too.
    # A snapshot keeps them: they finished all the same.
    recent_finished: deque[RequestEnd] = field(default_factory=lambda: deque(maxlen=FINISHED_KEPT))
    # Kinds neither applied nor in IGNORED_KINDS: a newer corral-core's, kept so a test or a debugger can see
    # them; the console goes on without them.
    unknown_kinds: set[str] = field(default_factory=set)

    def apply(self, kind: EventKind, data: EventPayload) -> set[str]:
        """Apply one event (`data` is the payload its kind carries, see contracts/events.py)."""
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return handler(self, data)
        if kind not in IGNORED_KINDS:
            self.unknown_kinds.add(kind)
        return set()

    def _snapshot(self, data: Snapshot) -> set[str]:
        self.status = {
            "version": data["version"],
            "started_at": data["started_at"],
            "uptime_s": data["uptime_s"],
            "models": data["models"],
            "requests_in_flight": data["requests_in_flight"],
        }
        self.providers = {p["name"]: p for p in data["providers"]}
        self.keys = {k["id"]: k for k in data["keys"]}
        self.requests = {r["id"]: r for r in data["requests"]}
        self.gpus = data["gpus"]
        self.fleet = data["fleet"]
        self.on_demand = {d["name"]: d for d in data.get("on_demand", [])}  # .get: a corral-core from before it
        self.archive = data.get("archive")  # .get: a corral-core from before the archive sends none
        # .get: a corral-core from before the queue sends none
        self.jobs.reset(data.get("jobs"), data["started_at"] + data["uptime_s"])
        self.deliveries.clear()
        return set(SECTIONS)

    def _provider(self, data: ProviderView) -> set[str]:
        self.providers[data["name"]] = data
        return {"providers"}

    def _provider_removed(self, data: ProviderRemoved) -> set[str]:
        return {"providers"} if self.providers.pop(data["name"], None) is not None else set()

    def _key(self, data: KeyView) -> set[str]:
        self.keys[data["id"]] = data
        return {"keys"}

    def _key_removed(self, data: KeyRemoved) -> set[str]:
        return {"keys"} if self.keys.pop(data["id"], None) is not None else set()

    def _request(self, data: LiveRequestView) -> set[str]:
        self.requests[data["id"]] = data
        return {"requests"}

    def _request_end(self, data: RequestEnd) -> set[str]:
        self.requests.pop(data["id"], None)
        self.finished += 1
        self.ended.append(data)
        self.recent_finished.append(data)
        return {"requests"}

    def _gpus(self, data: GpuSnapshotView) -> set[str]:
        self.gpus = data
        return {"gpus"}

    def _fleet(self, data: FleetView) -> set[str]:
        self.fleet = data
        return {"fleet"}

    def _deployment(self, data: OnDemandView) -> set[str]:
        self.on_demand[data["name"]] = data
        return {"on_demand"}

    def _deployment_removed(self, data: DeploymentRemoved) -> set[str]:
        self.on_demand.pop(data["name"], None)
        return {"on_demand"}

    def _decision(self, data: LoadDecisionView) -> set[str]:
        self.decisions.append(data)
        self.decisions_seen += 1
        return {"decisions"}

    def decisions_since(self, seen: int) -> list[LoadDecisionView]:
        """The decisions after the first `seen` (as many as are still kept), oldest first."""
        missed = min(self.decisions_seen - seen, len(self.decisions))
        return list(self.decisions)[len(self.decisions) - missed :] if missed > 0 else []

    def _archive(self, data: ArchiveStatusView) -> set[str]:
        self.archive = data
        return {"archive"}

    def _job(self, data: JobView) -> set[str]:
        self.jobs.apply(data)
        return {"jobs"}

    def _delivery(self, data: DeliveryView) -> set[str]:
        self.deliveries.apply(data)
        return {"deliveries"}

    def take_ended(self) -> list[RequestEnd]:
        """The ended requests' last views since the previous call."""
        ended = list(self.ended)
        self.ended.clear()
        return ended

    def in_flight(self, provider: str) -> int:
        return sum(1 for request in self.requests.values() if request.get("provider") == provider)


# One lookup per event (the console applies thousands a second on a busy gateway). Each handler is typed on its
# kind's payload; the payload's type is asserted here, where JSON from the wire meets them.
_HANDLERS: dict[str, Callable[[LiveState, Any], set[str]]] = {
    "snapshot": LiveState._snapshot,
    "provider": LiveState._provider,
    "provider.removed": LiveState._provider_removed,
    "key": LiveState._key,
    "key.removed": LiveState._key_removed,
    "request.start": LiveState._request,
    "request.progress": LiveState._request,
    "request.end": LiveState._request_end,
    "gpus": LiveState._gpus,
    "fleet": LiveState._fleet,
    "deployment": LiveState._deployment,
    "deployment.removed": LiveState._deployment_removed,
    "fleet.decision": LiveState._decision,
    "archive": LiveState._archive,
    "job": LiveState._job,
    "delivery": LiveState._delivery,
}
APPLIED_KINDS: frozenset[str] = frozenset(_HANDLERS)
