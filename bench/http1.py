"""A minimal HTTP/1.1 keep-alive client connection (asyncio Protocol + httptools), cheap enough for load generation.

httpx costs far more CPU per request than the gateway under test would leave room for on 2 cores, so the
generator speaks HTTP/1.1 itself: one prebuilt request, one parser per connection, one future per response.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httptools
import orjson


class StaleConnection(ConnectionError):
    """A reused keep-alive connection closed before any byte of the response: safe to retry on a new one."""


class ResponseError(Exception):
    """The response arrived but is not a success (status, an SSE error event, or a stream without [DONE])."""


@dataclass(slots=True)
class Result:
    latency_s: float
    ttft_s: float | None  # streams only: until the first chunk with non-empty content


def build_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Result] | None = None
        self.closed = False
        self.uses = 0
        self.received = False
        self.stream = False
        self.queued = False  # a job submission: success is a 202 naming the job, not a completion
        self.status = 0
        self.keep_alive = True
        self.sent_at = 0.0
        self.first_token_at: float | None = None
        self.body = bytearray()
        self.pending = b""
        self.done = False
        self.stream_error = False

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, protocol = await asyncio.get_running_loop().create_connection(cls, host, port)
        return protocol

    def request(self, raw: bytes, stream: bool, *, queued: bool = False) -> asyncio.Future[Result]:
        assert self.transport is not None
        assert not self.closed
        self.waiter = asyncio.get_running_loop().create_future()
        self.stream, self.queued, self.status, self.first_token_at = stream, queued, 0, None
        self.body, self.pending, self.done, self.stream_error = bytearray(), b"", False, False
        self.received = False
        self.uses += 1
        self.sent_at = time.perf_counter()
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ResponseError(f"unparseable response: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        stale = self.uses > 1 and not self.received
        self._fail((StaleConnection if stale else ConnectionError)(f"connection closed by the server ({exc or 'EOF'})"))

    # -- httptools callbacks ----------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.stream and self.status == 200:
            self._scan(body)
        elif len(self.body) < 65536:
            self.body += body

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        if not self.keep_alive:
            self.close()
        if self.queued:
            if self.status == 202 and b'"status_url"' in self.body:
                self._succeed(now)
            else:
                self._fail(ResponseError(f"HTTP {self.status}: {bytes(self.body[:200]).decode(errors='replace')}"))
        elif self.status != 200:
            self._fail(ResponseError(f"HTTP {self.status}: {bytes(self.body[:200]).decode(errors='replace')}"))
        elif self.stream and (self.stream_error or not self.done):
            self._fail(
                ResponseError(
                    "stream ended with an error event" if self.stream_error else "stream ended without data: [DONE]"
                )
            )
        elif not self.stream and b'"choices"' not in self.body:
            self._fail(ResponseError(f"no choices in: {bytes(self.body[:200]).decode(errors='replace')}"))
        else:
            self._succeed(now)

    def _succeed(self, now: float) -> None:
        ttft = self.first_token_at - self.sent_at if self.first_token_at is not None else None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Result(now - self.sent_at, ttft))

    # -- helpers ----------------------------------------------------------------------------------------

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    def _scan(self, data: bytes) -> None:
        """Split SSE frames; note the first content token, [DONE] and error events."""
        frames = (self.pending + data).split(b"\n\n")
        self.pending = frames.pop()
        for frame in frames:
            if not frame.startswith(b"data: "):
                continue
            payload = frame[6:]
            if payload == b"[DONE]":
                self.done = True
                continue
            if self.first_token_at is None and b'"content"' in payload and _has_content(payload):
                self.first_token_at = time.perf_counter()
            if payload.startswith(b'{"error"'):
                self.stream_error = True


def _has_content(payload: bytes) -> bool:
    try:
        choices = orjson.loads(payload).get("choices") or []
    except orjson.JSONDecodeError:
        return False
    return any((choice.get("delta") or {}).get("content") for choice in choices)
