"""An OpenAI-compatible server that impersonates llama-server and misbehaves on demand, for gateway tests.

    with FaultServer(model="tiny") as server:
        server.set_mode("status", status=429, retry_after=2, times=1)  # the next inference request only
        httpx.post(f"{server.base_url}/v1/chat/completions", json=...)

Modes (see MODE_OPTIONS for the options each takes) apply to the inference routes, POST /v1/chat/completions,
/v1/completions and /v1/embeddings; only those requests count towards `times`. GET /health follows "loading" only;
/v1/models and /props always answer normally.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import math
import random
import re
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.testbed.waiting import WaitTimedOut, wait_for

MODE_OPTIONS: dict[str, frozenset[str]] = {
    "ok": frozenset(),
    "status": frozenset({"status", "message", "error_type", "retry_after"}),
    "hang": frozenset(),
    "cut_stream": frozenset({"after_chunks"}),
    "garbage_sse": frozenset(),
    "slow": frozenset({"delay_s"}),
    "loading": frozenset(),
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "unavailable_error",
}
LOADING_BODY = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
GARBAGE_FRAMES = (b"data: {not json\n\n", b"data: " + random.Random(7).randbytes(24) + b"\n\n", b"\x00\xff\xfe\n\n")
SSE_HEADERS = {"Cache-Control": "no-cache"}
MAX_BODY_BYTES = 16 << 20
POLL_S = 0.02
HANG_LIMIT_S = 300.0  # a safety bound: a hang ends at server stop or client disconnect long before this
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class RecordedRequest(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass(frozen=True)
class Fault:
    mode: str = "ok"
    options: Mapping[str, Any] = field(default_factory=dict)


class _CutConnection(Exception):
    """Raised inside a response body so uvicorn drops the connection mid-response."""


class _HideCutConnections(logging.Filter):
    """Keeps uvicorn's "Exception in ASGI application" traceback for a deliberate cut out of the test output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _CutConnection))


class _Recorder:
    """Outermost ASGI layer: records each request, counts it in flight, and notices clients that leave early."""

    def __init__(self, app: ASGIApp, owner: FaultServer) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        self.owner._enter(RecordedRequest(scope["method"], scope["path"], headers, _parse_json(body)))
        replayed = complete = disconnected = False

        async def replay() -> Message:
            nonlocal replayed, disconnected
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message = await receive()
            if message["type"] == "http.disconnect" and not complete and not disconnected:
                disconnected = True
                self.owner._note_disconnect()
            return message

        async def watch(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True  # before sending, so the disconnect uvicorn reports after completion is not counted
            await send(message)

        try:
            await self.app(scope, replay, watch)
        finally:
            self.owner._leave()


async def _read_body(receive: Receive) -> bytes:
    body, more = bytearray(), True
    while more and len(body) <= MAX_BODY_BYTES:
        message = await receive()
        body += message.get("body", b"")
        more = message["type"] == "http.request" and message.get("more_body", False)
    return bytes(body)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _error(status: int, message: str, error_type: str | None = None, headers: dict[str, str] | None = None) -> Response:
    kind = error_type or ERROR_TYPES.get(status, "server_error")
    body = {"error": {"code": status, "message": message, "type": kind, "param": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _status_error(options: Mapping[str, Any]) -> Response:
    status = int(options.get("status", 500))
    retry_after = options.get("retry_after", 1 if status == 429 else None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    message = options.get("message", f"fault-server: injected {status}")
    return _error(status, message, options.get("error_type"), headers)


def _sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


def _prompt_text(body: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
    prompt = body.get("prompt")
    parts.extend([prompt] if isinstance(prompt, str) else [str(p) for p in prompt or []])
    return " ".join(parts)


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    # Multiples of 1/128 survive the float32 round trip of base64 encoding exactly.
    return [(digest[i % len(digest)] - 128) / 128 for i in range(dims)]


def _encoded(vector: list[float], as_base64: bool) -> list[float] | str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector


class FaultServer:
    """Serves llama-server's routes on 127.0.0.1 from a background thread while the `with` block runs.

    Recorded for the test, written by the server thread under a lock: `requests` (RecordedRequest tuples: method,
    path, headers, json body or None), `in_flight`, `peak_in_flight` and `disconnects` (clients that went away
    before their response was complete).
    """

    def __init__(
        self, model: str = "tiny", total_slots: int = 1, reply: str = "fault-server reply", embedding_dims: int = 8
    ) -> None:
        self.model = model
        self.total_slots = total_slots
        self.reply = reply
        self.embedding_dims = embedding_dims
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.in_flight = self.peak_in_flight = self.disconnects = 0
        self._lock = threading.Lock()
        self._fault = Fault()
        self._remaining: int | None = None
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- control from the test thread ---

    def set_mode(self, mode: str, *, times: int | None = None, **options: Any) -> None:
        """Misbehave as `mode` from the next inference request on; with `times=K`, for K of them, then "ok"."""
        if mode not in MODE_OPTIONS:
            raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(MODE_OPTIONS)}")
        unknown = set(options) - MODE_OPTIONS[mode]
        if unknown:
            allowed = sorted(MODE_OPTIONS[mode])
            raise TypeError(f"mode {mode!r} takes no option(s) {sorted(unknown)}; it takes {allowed}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._fault, self._remaining = Fault(mode, dict(options)), times

    @property
    def mode(self) -> str:
        with self._lock:
            return self._fault.mode

    # --- lifecycle ---

    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        config = uvicorn.Config(
            _Recorder(self._app(), self),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        logger = logging.getLogger("uvicorn.error")
        if not any(isinstance(existing, _HideCutConnections) for existing in logger.filters):
            logger.addFilter(_HideCutConnections())
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fault-server", daemon=True)
        self._thread.start()
        try:
            wait_for(self._started, "the fault server to start", START_TIMEOUT_S, interval_s=0.01)
        except WaitTimedOut:
            self.stop()
            raise
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    def _started(self) -> bool:
        assert self._server is not None
        assert self._thread is not None
        if not self._thread.is_alive():
            raise RuntimeError("the fault server did not start; see the uvicorn log above")
        return self._server.started

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(STOP_TIMEOUT_S)
        self._server = self._thread = None

    # --- the app, run on the server thread ---

    def _take_fault(self) -> Fault:
        with self._lock:
            fault = self._fault
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._fault, self._remaining = Fault(), None
            return fault

    def _enter(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(recorded)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _note_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/props", self._props, methods=["GET"]),
                Route("/api/tags", self._ollama_tags, methods=["GET"]),  # so it can stand in for Ollama too
                Route("/v1/chat/completions", self._inference, methods=["POST"]),
                Route("/v1/completions", self._inference, methods=["POST"]),
                Route("/v1/embeddings", self._inference, methods=["POST"]),
            ]
        )

    async def _health(self, request: Request) -> Response:
        if self.mode == "loading":
            return JSONResponse(LOADING_BODY, status_code=503)
        return JSONResponse({"status": "ok"})

    async def _models(self, request: Request) -> Response:
        entry = {"id": self.model, "object": "model", "created": 0, "owned_by": "llamacpp", "meta": None}
        return JSONResponse({"object": "list", "data": [entry], "models": [{"name": self.model, "model": self.model}]})

    async def _ollama_tags(self, request: Request) -> Response:
        return JSONResponse({"models": [{"name": self.model, "model": self.model, "size": 1}]})

    async def _props(self, request: Request) -> Response:
        return JSONResponse(
            {
                "total_slots": self.total_slots,
                "model_path": f"/models/{self.model}.gguf",
                "default_generation_settings": {"n_ctx": 1024},
                "build_info": "fault-server",
            }
        )

    async def _inference(self, request: Request) -> Response:
        body = _parse_json(await request.body())
        if not isinstance(body, dict):
            return _error(400, "the request body is not a JSON object")
        fault = self._take_fault()
        if fault.mode == "status":
            return _status_error(fault.options)
        if fault.mode == "loading":
            return JSONResponse(LOADING_BODY, status_code=503)
        if fault.mode == "hang":
            return await self._hang(request)
        if fault.mode == "garbage_sse":
            return StreamingResponse(self._emit(GARBAGE_FRAMES), media_type="text/event-stream", headers=SSE_HEADERS)
        delay_s = float(fault.options.get("delay_s", 0.0))
        await self._sleep(delay_s)
        return self._answer(request.url.path, body, fault, delay_s)

    def _answer(self, path: str, body: dict[str, Any], fault: Fault, delay_s: float) -> Response:
        cut_after = int(fault.options.get("after_chunks", 2)) if fault.mode == "cut_stream" else None
        if path.endswith("/embeddings"):
            payload = self._embeddings(body)
        elif body.get("stream"):
            frames = self._stream_frames(path, body)
            if cut_after is not None:
                frames = frames[:cut_after]
            stream = self._emit(frames, delay_s, cut=cut_after is not None)
            return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
        else:
            payload = self._completion(path, body)
        if cut_after is None:
            return JSONResponse(payload)
        encoded = json.dumps(payload).encode()  # announce the whole length, send half, then drop the connection
        headers = {"Content-Length": str(len(encoded))}
        cut = self._emit([encoded[: len(encoded) // 2]], cut=True)
        return StreamingResponse(cut, media_type="application/json", headers=headers)

    async def _emit(self, frames: Iterable[bytes], delay_s: float = 0.0, cut: bool = False) -> AsyncIterator[bytes]:
        for index, frame in enumerate(frames):
            if index:
                await self._sleep(delay_s)
            yield frame
        if cut:
            raise _CutConnection

    async def _hang(self, request: Request) -> Response:
        for _ in range(int(HANG_LIMIT_S / POLL_S)):
            if self._stopping.is_set() or await request.is_disconnected():
                break
            await asyncio.sleep(POLL_S)  # the hang is the behaviour under test; it polls for its own end
        return _error(503, "fault-server: stopped while hanging")

    async def _sleep(self, delay_s: float) -> None:
        # The delay of the "slow" mode, on purpose. Wakes early when the server stops, so it never holds up shutdown.
        deadline = time.monotonic() + delay_s
        for _ in range(math.ceil(delay_s / POLL_S)):
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping.is_set():
                return
            await asyncio.sleep(min(POLL_S, left))

    def _head(self, prefix: str, obj: str, body: Mapping[str, Any]) -> dict[str, Any]:
        model = body.get("model") or self.model
        return {"id": f"{prefix}-fault-{next(self._ids)}", "object": obj, "created": int(time.time()), "model": model}

    def _usage_for(self, body: Mapping[str, Any]) -> dict[str, int]:
        prompt, completion = max(1, len(_words(_prompt_text(body)))), len(_words(self.reply))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if path.endswith("/chat/completions"):
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": self.reply}}
            head = self._head("chatcmpl", "chat.completion", body)
        else:
            choice = {"index": 0, "text": self.reply, "logprobs": None}
            head = self._head("cmpl", "text_completion", body)
        return {**head, "choices": [{**choice, "finish_reason": "stop"}], "usage": self._usage_for(body)}

    def _stream_frames(self, path: str, body: Mapping[str, Any]) -> list[bytes]:
        chat = path.endswith("/chat/completions")
        head = self._head(*(("chatcmpl", "chat.completion.chunk") if chat else ("cmpl", "text_completion")), body)

        def choice(word: str | None, finish: str | None, first: bool = False) -> dict[str, Any]:
            if not chat:
                return {"index": 0, "text": word or "", "logprobs": None, "finish_reason": finish}
            delta = ({"role": "assistant"} if first else {}) | ({"content": word} if word is not None else {})
            return {"index": 0, "delta": delta, "finish_reason": finish}

        words = _words(self.reply)
        frames = [_sse({**head, "choices": [choice(word, None, index == 0)]}) for index, word in enumerate(words)]
        frames.append(_sse({**head, "choices": [choice(None, "stop")]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            frames.append(_sse({**head, "choices": [], "usage": self._usage_for(body)}))
        return [*frames, b"data: [DONE]\n\n"]

    def _embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
        texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs or []]
        dims = int(body.get("dimensions") or self.embedding_dims)
        base64_wanted = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _encoded(_vector(text, dims), base64_wanted)}
            for i, text in enumerate(texts)
        ]
        tokens = sum(max(1, len(_words(text))) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": body.get("model") or self.model, "usage": usage}
