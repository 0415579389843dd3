"""`GET /events`: an SSE stream of one snapshot, then deltas, for the console."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway_core.contracts.events import EventKind, EventPayload
from gateway_core.contracts.views import Snapshot
from gateway_core.events import EventBus, squash_requests

KEEPALIVE_S = 15.0
# Events that come within this long of the first go out in one write, each request's superseded ones dropped: a busy
# gateway publishes thousands a second, and a write each wakes the console (and this loop) as often.
COALESCE_S = 0.05


def _frame(kind: EventKind, data: EventPayload, seq: int = 0) -> bytes:
    return b"event: " + kind.encode() + b"\nid: " + str(seq).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def events_endpoint(events: EventBus, request: Request, snapshot: Callable[[], Snapshot]) -> Response:
    queue = events.subscribe()  # before the snapshot, so nothing falls between the two

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield _frame("snapshot", snapshot())
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is None:  # this subscriber fell behind; the client reconnects for a fresh snapshot
                    return
                await asyncio.sleep(COALESCE_S)
                batch = [event]
                while not queue.empty() and (event := queue.get_nowait()) is not None:
                    batch.append(event)
                yield b"".join(_frame(e.kind, e.data, e.seq) for e in squash_requests(batch))
                if event is None:
                    return
        finally:
            events.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})
