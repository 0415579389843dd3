"""A local server speaking Anthropic's Messages API, with deterministic echo answers, for end-to-end tests.

    with AnthropicFakeServer() as server:
        httpx.post(f"{server.base_url}/v1/messages", headers={"x-api-key": server.api_key, ...}, json=...)

The answer is "echo: <text of the last user message>", cut to max_tokens words (then stop_reason "max_tokens").
input_tokens counts the words of the system prompt and all messages; output_tokens the words of the answer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.testbed.waiting import WaitTimedOut, wait_for

DEFAULT_API_KEY = "sk-ant-fake-test-key"
DEFAULT_MODELS = ("claude-fake-1",)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class AnthropicFakeServer:
    """Serves /v1/messages and /v1/models on 127.0.0.1 from a background thread while the `with` block runs.

    Knobs a test may set between requests:
    - `error_status`: answer every message request with Anthropic's error body for this status (429, 500, 529, ...).
    - `stream_fault`: "error" sends an overloaded_error event after the first word, "cut" closes the stream there
      without message_stop.
    """

    def __init__(self, api_key: str | None = DEFAULT_API_KEY, models: tuple[str, ...] = DEFAULT_MODELS) -> None:
        self.api_key = api_key
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.error_status: int | None = None
        self.stream_fault: str | None = None
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def __enter__(self) -> AnthropicFakeServer:
        app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="anthropic-fake-server", daemon=True)
        self._thread.start()
        try:
            wait_for(self._started, "the fake Anthropic server to start", 10.0, interval_s=0.01)
        except WaitTimedOut:
            self._stop()
            raise
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop()

    def _started(self) -> bool:
        assert self._server is not None
        assert self._thread is not None
        if not self._thread.is_alive():
            raise RuntimeError("the fake Anthropic server did not start; see the uvicorn log above")
        return self._server.started

    def _stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _list_models(self, request: Request) -> Response:
        if (refused := self._check_key(request)) is not None:
            return refused
        data = [
            {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
            for model in self.models
        ]
        return _json(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def _messages(self, request: Request) -> Response:
        if (refused := self._check_key(request)) is not None:
            return refused
        if not request.headers.get("anthropic-version"):
            return anthropic_error(400, "anthropic-version: header is required")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return anthropic_error(400, "There was an error parsing the body of your request")
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))
        if (invalid := _validate(body)) is not None:
            return anthropic_error(400, invalid)
        if self.error_status is not None:
            return anthropic_error(self.error_status, f"fake upstream failure with status {self.error_status}")
        reply = _Reply(body, f"msg_fake_{next(self._ids):04d}")
        if body.get("stream"):
            return StreamingResponse(self._events(reply), media_type="text/event-stream")
        return _json(reply.message())

    def _check_key(self, request: Request) -> Response | None:
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return anthropic_error(401, "invalid x-api-key")
        return None

    async def _events(self, reply: _Reply) -> AsyncIterator[bytes]:
        yield _event("message_start", {"type": "message_start", "message": reply.message(started=True)})
        yield _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        yield _event("ping", {"type": "ping"})
        for position, word in enumerate(reply.words):
            piece = word if position == 0 else f" {word}"
            yield _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
            if self.stream_fault == "cut":
                return
            if self.stream_fault == "error":
                yield _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
        yield _event("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        )
        yield _event("message_stop", {"type": "message_stop"})


class _Reply:
    """The deterministic answer to one Messages API request."""

    def __init__(self, body: dict[str, Any], message_id: str) -> None:
        self.id = message_id
        self.model = body["model"]
        words = f"echo: {_last_user_text(body['messages'])}".split()
        self.words = words[: body["max_tokens"]]
        self.stop_reason = "max_tokens" if len(words) > body["max_tokens"] else "end_turn"
        self.input_tokens = _count_words(body)
        self.output_tokens = len(self.words)

    def message(self, *, started: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [] if started else [{"type": "text", "text": " ".join(self.words)}],
            "stop_reason": None if started else self.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1 if started else self.output_tokens},
        }


def anthropic_error(status: int, message: str) -> Response:
    error_type = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return _json({"type": "error", "error": {"type": error_type, "message": message}}, status)


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers={"request-id": "req_fake"}
    )


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    roles = [message.get("role") for message in messages if isinstance(message, dict)]
    if len(roles) != len(messages) or any(role not in ("user", "assistant") for role in roles):
        return "messages: roles must be 'user' or 'assistant'"
    if any(first == second for first, second in itertools.pairwise(roles)):
        return "messages: roles must alternate between 'user' and 'assistant'"
    return None


def _texts(content: Any) -> list[str]:
    """The text in a message's content: a string, text blocks, and the text inside tool results."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            texts.extend(_texts(block.get("content", "")))
    return texts


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    users = [message for message in messages if message["role"] == "user"]
    return " ".join(_texts(users[-1]["content"])) if users else ""


def _count_words(body: dict[str, Any]) -> int:
    texts = _texts(body.get("system", ""))
    for message in body["messages"]:
        texts.extend(_texts(message["content"]))
    return sum(len(text.split()) for text in texts)
