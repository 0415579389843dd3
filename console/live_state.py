"""What the console knows about corral-core, rebuilt from the event stream: one snapshot, then deltas.

Pure data, no widgets: `apply` returns which sections changed so screens refresh only those.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("status", "providers", "keys", "requests", "gpus", "fleet")
ENDED_KEPT = 4096  # ended requests kept for a rate view to count; bounds memory while no dashboard reads them


@dataclass
class LiveState:
    status: dict[str, Any] = field(default_factory=dict)  # version, uptime, models...
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # live requests by id
    gpus: dict[str, Any] = field(
        default_factory=lambda: {"state": "unavailable", "reason": "connecting", "devices": []}
    )
    fleet: dict[str, Any] = field(
        default_factory=lambda: {"engine": {"state": "unavailable", "reason": "connecting"}, "deployments": []}
    )
    finished: int = 0  # requests finished since the snapshot
    # The request.end views since a rate view last took them: a request shorter than one redraw is never in
    # `requests` when a screen looks, so rates are counted from these.
    ended: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ENDED_KEPT))

    def apply(self, kind: str, data: dict[str, Any]) -> set[str]:
        handler = _HANDLERS.get(kind)
        return handler(self, data) if handler else set()

    def _snapshot(self, data: dict[str, Any]) -> set[str]:
        self.status = {k: v for k, v in data.items() if k not in ("providers", "keys", "requests", "gpus", "fleet")}
        self.providers = {p["name"]: p for p in data.get("providers", [])}
        self.keys = {k["id"]: k for k in data.get("keys", [])}
        self.requests = {r["id"]: r for r in data.get("requests", [])}
        self.gpus = data.get("gpus", self.gpus)
        self.fleet = data.get("fleet", self.fleet)
        return set(SECTIONS)

    def _provider(self, data: dict[str, Any]) -> set[str]:
        self.providers[data["name"]] = data
        return {"providers"}

    def _provider_removed(self, data: dict[str, Any]) -> set[str]:
        return {"providers"} if self.providers.pop(data["name"], None) is not None else set()

    def _key(self, data: dict[str, Any]) -> set[str]:
        self.keys[data["id"]] = data
        return {"keys"}

    def _key_removed(self, data: dict[str, Any]) -> set[str]:
        return {"keys"} if self.keys.pop(data["id"], None) is not None else set()

    def _request(self, data: dict[str, Any]) -> set[str]:
        self.requests[data["id"]] = data
        return {"requests"}

    def _request_end(self, data: dict[str, Any]) -> set[str]:
        self.requests.pop(data["id"], None)
        self.finished += 1
        self.ended.append(data)
        return {"requests"}

    def _gpus(self, data: dict[str, Any]) -> set[str]:
        self.gpus = data
        return {"gpus"}

    def _fleet(self, data: dict[str, Any]) -> set[str]:
        self.fleet = data
        return {"fleet"}

    def take_ended(self) -> list[dict[str, Any]]:
        """The ended requests' last views since the previous call."""
        ended = list(self.ended)
        self.ended.clear()
        return ended

    def in_flight(self, provider: str) -> int:
        return sum(1 for request in self.requests.values() if request.get("provider") == provider)


_HANDLERS = {
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
}
