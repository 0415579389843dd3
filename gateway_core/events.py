"""The event bus behind the admin `/events` stream: one snapshot, then deltas.

Publishing never blocks the request path: each subscriber has a bounded queue, and one that falls
too far behind is dropped (its stream ends; the console reconnects and gets a fresh snapshot).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

SUBSCRIBER_QUEUE = 2048


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str  # e.g. "provider", "request.start", "request.progress", "request.end", "key", "gpu"
    data: dict[str, Any]
    at: float


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._seq = itertools.count(1)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        event = Event(next(self._seq), kind, data, time.time())
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                _close(queue)

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


def squash_requests(events: list[Event]) -> list[Event]:
    """Drop each request's start and progress events that a later event in the same batch supersedes.

    A subscriber applies request.start and request.progress alike (the request's latest view) and request.end
    removes it, so only a request's last event in a batch matters; at thousands of short requests a second
    this halves what the console must decode.
    """
    last: dict[str, int] = {}
    for index, event in enumerate(events):
        if event.kind.startswith("request."):
            last[event.data["id"]] = index
    return [
        event
        for index, event in enumerate(events)
        if not event.kind.startswith("request.") or last[event.data["id"]] == index
    ]


def _close(queue: asyncio.Queue[Event | None]) -> None:
    """Make room for the end-of-stream marker in a full queue."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
