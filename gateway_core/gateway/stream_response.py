"""An event-stream response that relays chunks as they come and stops the relay the moment the client leaves.

Starlette's StreamingResponse watches for the client leaving through an anyio task group per response, which
the benchmark showed as a large share of the time to first token. This one uses one plain asyncio task.
uvicorn drops writes to a client that has gone without telling the sender, so the watch is needed: without it
a stream would run on upstream (holding its llama-server slot) for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, chunks: AsyncGenerator[bytes, None], headers: Mapping[str, str]) -> None:
        # Not Response.__init__: it renders a body and would announce "content-length: 0".
        self.chunks = chunks
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        client_gone = False

        async def watch_for_disconnect() -> None:
            nonlocal client_gone
            while (await receive())["type"] != "http.disconnect":
                pass
            client_gone = True
            relay.cancel()  # lands in the relay's await: the upstream read or the write to the client

        watcher = asyncio.ensure_future(watch_for_disconnect())
        try:
            async with aclosing(self.chunks) as chunks:
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not client_gone:
                raise
            relay.uncancel()  # our own cancel, to stop relaying; the request itself ends normally
        finally:
            watcher.cancel()
