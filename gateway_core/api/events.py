"""`GET /events`: an SSE stream of one snapshot, then deltas, for the console."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway_core.state import GatewayState

KEEPALIVE_S = 15.0
# Events that come within this long of the first go out in one write: a busy gateway publishes hundreds a second,
# and a write each wakes the console (and this loop) as often. The console redraws every 0.25 s anyway.
COALESCE_S = 0.05


def _frame(kind: str, data: Any, seq: int = 0) -> bytes:
    return b"event: " + kind.encode() + b"\nid: " + str(seq).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def events_endpoint(state: GatewayState, request: Request, snapshot: Callable[[], dict[str, Any]]) -> Response:
    queue = state.events.subscribe()  # before the snapshot, so nothing falls between the two

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
                frames = [_frame(event.kind, event.data, event.seq)]
                while not queue.empty():
                    event = queue.get_nowait()
                    if event is None:
                        yield b"".join(frames)
                        return
                    frames.append(_frame(event.kind, event.data, event.seq))
                yield b"".join(frames)
        finally:
            state.events.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})
