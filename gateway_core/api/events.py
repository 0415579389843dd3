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
                yield _frame(event.kind, event.data, event.seq)
        finally:
            state.events.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})
