"""The event bus behind the admin `/events` stream: one snapshot, then deltas.

Publishing never blocks the request path: each subscriber has a bounded queue, and one that falls
too far behind is dropped (its stream ends; the console reconnects and gets a fresh snapshot).
The kinds and their payloads are contracts/events.py's; `publish` is typed by them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from gateway_core.contracts.events import REQUEST_KINDS, EventKind, EventPayload, Publish

SUBSCRIBER_QUEUE = 2048


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: EventKind
    data: EventPayload
    at: float


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._seq = itertools.count(1)
        # Typed per kind by the `Publish` overloads; the implementation below takes any pairing.
        self.publish: Publish = self._publish

    def _publish(self, kind: EventKind, data: EventPayload) -> None:
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


def _request_id(event: Event) -> str | None:
    """The live request an event describes; None for the other kinds."""
    if event.kind not in REQUEST_KINDS:
        return None
    request_id = event.data.get("id")
    return request_id if isinstance(request_id, str) else None


def squash_requests(events: list[Event]) -> list[Event]:
    """Drop each request's start and progress events that a later event in the same batch supersedes.

    A subscriber applies request.start and request.progress alike (the request's latest view) and request.end
    removes it, so only a request's last event in a batch matters; at thousands of short requests a second
    this halves what the console must decode.
    """
    last: dict[str, int] = {}
    ids = [_request_id(event) for event in events]
    for index, request_id in enumerate(ids):
        if request_id is not None:
            last[request_id] = index
    return [
        event
        for index, (event, request_id) in enumerate(zip(events, ids, strict=True))
        if request_id is None or last[request_id] == index
    ]


def _close(queue: asyncio.Queue[Event | None]) -> None:
    """Make room for the end-of-stream marker in a full queue."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
