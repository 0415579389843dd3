"""The null upstream: an OpenAI-compatible server that answers at once with canned bytes.

It impersonates llama-server (`/health`, `/v1/models`, `/props` with `total_slots`) so corral-core treats it as one,
and it costs as little CPU as possible (raw asyncio + httptools on uvloop), so that what a benchmark through it
measures is the gateway. A streamed request for the upstream model `drip` (or `drip-N`) is answered slowly instead:
one content chunk per second (N per second), `max_tokens` of them, so that requests stay live (the console benchmark).
Run it in its own process:

    python -m bench.null_upstream --port 9000 [--model null] [--slots 512]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal

import httptools
import orjson
import uvloop

CONTENT = ("Hello", " from", " the", " null", " upstream")
DRIP_MODEL = "drip"
DRIP_DEFAULT_CHUNKS = 60
DRIP_MAX_S = 300.0  # no drip stream outlives this, whatever max_tokens asks for
DRIP_MIN_SLEEP_S = 0.002
# Words of a dripped answer; every paragraph ends with a blank line, as model answers do.
DRIP_WORDS = (" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog") * 4 + (".\n\n",)


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode()
    return head + b"Content-Type: " + content_type + b"\r\n\r\n" + body


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Canned:
    """Every response this server can give, built once."""

    def __init__(self, model: str, slots: int) -> None:
        json_type = b"application/json"
        usage = {"prompt_tokens": 4, "completion_tokens": len(CONTENT), "total_tokens": 4 + len(CONTENT)}
        completion = {
            "id": "chatcmpl-null",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "".join(CONTENT)}}
            ],
            "usage": usage,
        }
        self.completion = _response("200 OK", json_type, orjson.dumps(completion))
        self.health = _response("200 OK", json_type, b'{"status":"ok"}')
        models = {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "bench"}]}
        self.models = _response("200 OK", json_type, orjson.dumps(models))
        props = {"total_slots": slots, "model_path": f"/null/{model}.gguf", "build_info": "null-upstream"}
        self.props = _response("200 OK", json_type, orjson.dumps(props))
        not_found = {"error": {"code": 404, "message": "not found", "type": "not_found_error", "param": None}}
        self.not_found = _response("404 Not Found", json_type, orjson.dumps(not_found))
        self.stream_plain = self._stream(model, None)
        self.stream_usage = self._stream(model, usage)

    @staticmethod
    def _stream(model: str, usage: dict[str, int] | None) -> bytes:
        base = {"id": "chatcmpl-null", "object": "chat.completion.chunk", "created": 0, "model": model}
        deltas = [{"role": "assistant", "content": None}] + [{"content": text} for text in CONTENT]
        frames = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
        frames.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if usage is not None:
            frames.append({**base, "choices": [], "usage": usage})
        body = b"".join(_chunk(b"data: " + orjson.dumps(frame) + b"\n\n") for frame in frames)
        body += _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + body


def drip_rate(model: object) -> float | None:
    """Chunks per second for a drip model name (`drip`: 1, `drip-N`: N), None for any other model."""
    if model == DRIP_MODEL:
        return 1.0
    if isinstance(model, str) and model.startswith(DRIP_MODEL + "-"):
        try:
            rate = float(model.removeprefix(DRIP_MODEL + "-"))
        except ValueError:
            return None
        return rate if rate > 0 else None
    return None


class Drip:
    """A streamed answer written a chunk at a time at `rate` per second, bounded in count and in time."""

    def __init__(self, model: str, rate: float, chunks: int, usage: bool) -> None:
        self.rate = rate
        self.chunks = max(1, min(chunks, int(rate * DRIP_MAX_S)))
        base = {"id": "chatcmpl-drip", "object": "chat.completion.chunk", "created": 0, "model": model}
        self._frames = [
            self._frame({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
            for word in DRIP_WORDS
        ]
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        self.head = (
            head
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + self._frame(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}],
                }
            )
        )
        tail = [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        if usage:
            tail.append(
                {
                    **base,
                    "choices": [],
                    "usage": {"prompt_tokens": 4, "completion_tokens": self.chunks, "total_tokens": 4 + self.chunks},
                }
            )
        self.tail = b"".join(map(self._frame, tail)) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"

    @staticmethod
    def _frame(frame: dict[str, object]) -> bytes:
        return _chunk(b"data: " + orjson.dumps(frame) + b"\n\n")

    async def write(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        transport.write(self.head)
        started, sent = loop.time(), 0
        words = itertools.cycle(self._frames)
        while sent < self.chunks and not transport.is_closing():
            due = min(self.chunks, int((loop.time() - started) * self.rate) + 1)
            if due > sent:  # at high rates, every chunk that is due goes in one write
                transport.write(b"".join(itertools.islice(words, due - sent)))
                sent = due
            await asyncio.sleep(max(DRIP_MIN_SLEEP_S, started + sent / self.rate - loop.time()))
        if not transport.is_closing():
            transport.write(self.tail)


class NullProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests with httptools, answer each with canned bytes."""

    def __init__(self, canned: Canned) -> None:
        self.canned = canned
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body = bytearray()
        self.drips: set[asyncio.Future[None]] = set()  # held, so running drip tasks are not collected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        assert self.transport is not None
        path = self.url.split(b"?", 1)[0]
        drip = self._drip(self.body) if path == b"/v1/chat/completions" else None
        if drip is not None:
            task = asyncio.ensure_future(self._finish_drip(drip, self.parser.should_keep_alive()))
            self.drips.add(task)
            task.add_done_callback(self.drips.discard)
        else:
            self.transport.write(self._answer(path))
        self.url, self.body = b"", bytearray()
        if drip is None and not self.parser.should_keep_alive():
            self.transport.close()

    def _drip(self, body: bytes) -> Drip | None:
        if b'"drip' not in body:
            return None  # the common case stays one JSON parse per request
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        rate = drip_rate(request.get("model")) if isinstance(request, dict) else None
        if rate is None or request.get("stream") is not True:
            return None
        options = request.get("stream_options")
        chunks = request.get("max_tokens")
        return Drip(
            request["model"],
            rate,
            chunks if isinstance(chunks, int) else DRIP_DEFAULT_CHUNKS,
            usage=isinstance(options, dict) and options.get("include_usage") is True,
        )

    async def _finish_drip(self, drip: Drip, keep_alive: bool) -> None:
        assert self.transport is not None
        await drip.write(self.transport)
        if not keep_alive:
            self.transport.close()

    def _answer(self, path: bytes) -> bytes:
        canned = self.canned
        if path == b"/v1/chat/completions":
            return self._chat()
        if path == b"/health":
            return canned.health
        if path in (b"/v1/models", b"/models"):
            return canned.models
        if path == b"/props":
            return canned.props
        return canned.not_found

    def _chat(self) -> bytes:
        try:
            request = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return _response("400 Bad Request", b"application/json", b'{"error":{"message":"bad json"}}')
        if request.get("stream") is not True:
            return self.canned.completion
        options = request.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        return self.canned.stream_usage if wants_usage else self.canned.stream_plain


async def serve(host: str, port: int, model: str, slots: int) -> None:
    loop = asyncio.get_running_loop()
    canned = Canned(model, slots)
    server = await loop.create_server(lambda: NullProtocol(canned), host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.null_upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="null")
    parser.add_argument("--slots", type=int, default=512, help="total_slots reported by /props")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port, args.model, args.slots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
