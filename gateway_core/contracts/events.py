"""The admin event stream's kinds and what each carries: the one place both ends read them from.

The daemon publishes through `Publish` (gateway_core/events.py's `EventBus.publish`), so publishing a kind with
another kind's payload, or a kind that does not exist, is a type error. The client yields `DaemonEvent`s, a
union of (kind, payload) pairs that narrows on the kind: `if event[0] == "provider": event[1]["name"]`, or
`match event: case ("provider", view): ...`.

Why overloads on one `publish` rather than a method per kind or an event class per kind: every call site reads
as the wire does (`publish("key", view)`), the kind names stay the ones the console matches on, and adding a
kind is one line here plus its payload type; tests/test_events.py checks `EventKind` and the overloads agree.
"""

from __future__ import annotations

from typing import Literal, Protocol, get_args, overload

from gateway_core.contracts.fleet_views import (
    ContainerEventView,
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

EventKind = Literal[
    "snapshot",  # Snapshot: first on every stream, and only there
    "provider",  # ProviderView: added, changed, or its health or circuit changed
    "provider.removed",  # ProviderRemoved
    "key",  # KeyView: created or changed
    "key.removed",  # KeyRemoved
    "request.start",  # LiveRequestView
    "request.progress",  # LiveRequestView, at most every 0.25 s per streamed request
    "request.end",  # RequestEnd
    "gpus",  # GpuSnapshotView, every sample
    "fleet",  # FleetView, after container events change the inventory
    "container",  # ContainerEventView: one engine event on a llama-server container
    "archive",  # ArchiveStatusView: the archive's writer started or stopped dropping rows or failing, at most 1/s
    "job",  # JobView (with `result` left out, as None): a queued job was added or changed state
    "delivery",  # DeliveryView: a callback delivery was added, attempted, delivered or dead-lettered
    "deployment",  # OnDemandView: a deployment's load state, policy or use changed (fleet/on_demand.py)
    "deployment.removed",  # DeploymentRemoved
    "fleet.decision",  # LoadDecisionView: a deployment was started, stopped or refused, and why
]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
# The kinds that describe one live request; each payload's "id" names it (squashing relies on that).
REQUEST_KINDS: frozenset[EventKind] = frozenset({"request.start", "request.progress", "request.end"})

EventPayload = (
    Snapshot
    | ProviderView
    | ProviderRemoved
    | KeyView
    | KeyRemoved
    | LiveRequestView
    | RequestEnd
    | GpuSnapshotView
    | FleetView
    | ContainerEventView
    | ArchiveStatusView
    | JobView
    | DeliveryView
    | OnDemandView
    | DeploymentRemoved
    | LoadDecisionView
)

# What the client yields: one pair per event, narrowed by its kind.
DaemonEvent = (
    tuple[Literal["snapshot"], Snapshot]
    | tuple[Literal["provider"], ProviderView]
    | tuple[Literal["provider.removed"], ProviderRemoved]
    | tuple[Literal["key"], KeyView]
    | tuple[Literal["key.removed"], KeyRemoved]
    | tuple[Literal["request.start"], LiveRequestView]
    | tuple[Literal["request.progress"], LiveRequestView]
    | tuple[Literal["request.end"], RequestEnd]
    | tuple[Literal["gpus"], GpuSnapshotView]
    | tuple[Literal["fleet"], FleetView]
    | tuple[Literal["container"], ContainerEventView]
    | tuple[Literal["archive"], ArchiveStatusView]
    | tuple[Literal["job"], JobView]
    | tuple[Literal["delivery"], DeliveryView]
    | tuple[Literal["deployment"], OnDemandView]
    | tuple[Literal["deployment.removed"], DeploymentRemoved]
    | tuple[Literal["fleet.decision"], LoadDecisionView]
)


class Publish(Protocol):
    """Send one event to every subscriber of the admin stream. Never blocks."""

    # "snapshot" is not published: each stream builds its own when it starts (api/events.py).
    @overload
    def __call__(self, kind: Literal["provider"], data: ProviderView) -> None: ...
    @overload
    def __call__(self, kind: Literal["provider.removed"], data: ProviderRemoved) -> None: ...
    @overload
    def __call__(self, kind: Literal["key"], data: KeyView) -> None: ...
    @overload
    def __call__(self, kind: Literal["key.removed"], data: KeyRemoved) -> None: ...
    @overload
    def __call__(self, kind: Literal["request.start", "request.progress"], data: LiveRequestView) -> None: ...
    @overload
    def __call__(self, kind: Literal["request.end"], data: RequestEnd) -> None: ...
    @overload
    def __call__(self, kind: Literal["gpus"], data: GpuSnapshotView) -> None: ...
    @overload
    def __call__(self, kind: Literal["fleet"], data: FleetView) -> None: ...
    @overload
    def __call__(self, kind: Literal["container"], data: ContainerEventView) -> None: ...
    @overload
    def __call__(self, kind: Literal["archive"], data: ArchiveStatusView) -> None: ...
    @overload
    def __call__(self, kind: Literal["job"], data: JobView) -> None: ...
    @overload
    def __call__(self, kind: Literal["delivery"], data: DeliveryView) -> None: ...
    @overload
    def __call__(self, kind: Literal["deployment"], data: OnDemandView) -> None: ...
    @overload
    def __call__(self, kind: Literal["deployment.removed"], data: DeploymentRemoved) -> None: ...
    @overload
    def __call__(self, kind: Literal["fleet.decision"], data: LoadDecisionView) -> None: ...
    def __call__(self, kind: EventKind, data: EventPayload) -> None:
        """What `EventBus` implements; callers are held to the overloads above."""
