"""An httpx transport that calls an ASGI app in this process and streams its answer, as a socket would.

httpx's own ASGITransport runs the app to the end and buffers the whole body before it returns a response,
so an endless stream (`GET /events`) never answers, and its `receive()` reports the client gone only once the
response is complete, so a test cannot leave mid-stream. This one hands the response back at
`http.response.start` and yields body chunks as the app sends them; closing the response early tells the app
the client left (`http.disconnect`). Like uvicorn it also reports a disconnect once the response is complete,
drops writes to a client that has gone, and leaves an app running after its client left (the app notices
through `receive()`, or not). It honours the request's read timeout, raising httpx.ReadTimeout, so a hung
app fails a test instead of hanging it. What the app raises reaches the test, as with ASGITransport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import httpx
from starlette.types import ASGIApp, Message

T = TypeVar("T")
# An app still running this long after it completed its response is a bug worth a failure.
APP_EXIT_TIMEOUT_S = 10.0


class _End:
    """Queued after the last body chunk."""


_END = _End()


class _Exchange:
    """One request and its response: the app's side (receive, send) and the client's (next_chunk, close)."""

    def __init__(self, request: httpx.Request) -> None:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        self.request = request
        self._body = request.stream.__aiter__()
        self._request_done = False
        self.started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = asyncio.get_running_loop().create_future()
        self._chunks: asyncio.Queue[bytes | _End | Exception] = asyncio.Queue()
        self.complete = False
        self.client_gone = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # What the app raised where no reader of the body will see it: raised by close() or the transport's aclose().
        self.unreported: Exception | None = None
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        self.read_timeout_s = timeouts.get("read")

    # -- the app's side -------------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._request_done:
            try:
                chunk = await self._body.__anext__()
            except StopAsyncIteration:
                self._request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self.client_gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started.set_result((message["status"], list(message.get("headers", []))))
        elif message["type"] == "http.response.body":
            if self.complete or self.client_gone.is_set():
                return
            body = message.get("body", b"")
            if body:
                self._chunks.put_nowait(body)
            if not message.get("more_body", False):
                self.complete = True
                self._chunks.put_nowait(_END)
                self.client_gone.set()

    def app_returned(self, error: Exception | None) -> None:
        if not self.started.done():
            self.started.set_exception(error or RuntimeError("the app returned without starting a response"))
        elif self.complete or self.client_gone.is_set():
            self.unreported = error
        else:
            self.complete = True
            self._chunks.put_nowait(error if error is not None else _END)

    # -- the client's side ----------------------------------------------------------------------------

    async def wait(self, awaitable: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.read_timeout_s):
                return await awaitable
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer within {self.read_timeout_s} s", request=self.request) from None

    async def next_chunk(self) -> bytes | _End:
        item = await self.wait(self._chunks.get())
        if isinstance(item, Exception):
            raise item
        return item

    async def close(self) -> None:
        """The client is done with the response. After a complete one, wait for the app to return and raise
        what it raised; after an early close, leave it running for the transport to collect."""
        left_early = not self.complete
        self.client_gone.set()
        if left_early or self.task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), APP_EXIT_TIMEOUT_S)
        except TimeoutError:
            path = self.request.url.path
            raise AssertionError(f"{path} still running {APP_EXIT_TIMEOUT_S:g} s after its response") from None
        self.raise_unreported()

    def raise_unreported(self) -> None:
        error, self.unreported = self.unreported, None
        if error is not None:
            raise error


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not isinstance(chunk := await self._exchange.next_chunk(), _End):
            yield chunk

    async def aclose(self) -> None:
        await self._exchange.close()


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Give each client its own instance: closing a client closes its transport, which ends its open requests."""

    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client
        self._exchanges: set[_Exchange] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port or 80),
            "client": self.client,
            "root_path": "",
        }
        exchange = _Exchange(request)

        async def run_app() -> None:
            try:
                await self.app(scope, exchange.receive, exchange.send)
            except Exception as error:
                exchange.app_returned(error)
            else:
                exchange.app_returned(None)
            if exchange.unreported is None:
                self._exchanges.discard(exchange)

        exchange.task = asyncio.create_task(run_app(), name=f"asgi {request.method} {request.url.path}")
        self._exchanges.add(exchange)
        try:
            status, headers = await exchange.wait(asyncio.shield(exchange.started))
        except BaseException:
            exchange.client_gone.set()
            raise
        return httpx.Response(status, headers=headers, stream=_ResponseBody(exchange), request=request)

    async def aclose(self) -> None:
        """End what the app still runs for clients that left, then raise the first error the app raised unseen."""
        exchanges, self._exchanges = self._exchanges, set()
        for exchange in exchanges:
            exchange.client_gone.set()
            if exchange.task is not None and not exchange.task.done():
                exchange.task.cancel()
        await asyncio.gather(*(e.task for e in exchanges if e.task is not None), return_exceptions=True)
        for exchange in exchanges:
            exchange.raise_unreported()
