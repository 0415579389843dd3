"""Anthropic's Messages SSE stream, translated incrementally into OpenAI chat.completion.chunk frames."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

DONE_FRAME = b"data: [DONE]\n\n"

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI's finish_reason for an Anthropic stop_reason; anything unknown reads as a normal stop."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def prompt_tokens(usage: dict[str, Any]) -> int:
    """Anthropic counts cached prompt tokens apart from input_tokens; OpenAI's prompt_tokens includes them."""
    return sum(
        int(usage.get(field) or 0)
        for field in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )


def openai_error(message: str, error_type: str = "upstream_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def error_from_anthropic(payload: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's error shape for an Anthropic error body or stream event ({"type": "error", "error": {...}})."""
    error = payload.get("error")
    if not isinstance(error, dict):
        return openai_error("the Anthropic upstream reported an error without details")
    message = str(error.get("message") or "the Anthropic upstream reported an error without details")
    return openai_error(message, str(error.get("type") or "upstream_error"))


def sse_frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


class SseEventReader:
    """Splits SSE bytes fed in arbitrary fragments into (event name, data) pairs, per the SSE line rules."""

    def __init__(self) -> None:
        self._pending = b""
        self._lines = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        pending = self._pending + data
        # A trailing \r may be the first half of \r\n: keep it until the next fragment decides.
        cut = len(pending) - 1 if pending.endswith(b"\r") else len(pending)
        self._pending = pending[cut:]
        self._lines += pending[:cut].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        while (end := self._lines.find(b"\n\n")) != -1:
            block, self._lines = self._lines[:end], self._lines[end + 2 :]
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events


def _parse_block(block: bytes) -> tuple[str, bytes] | None:
    name, data = "message", []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if field == b"event":
            name = value.decode("utf-8", "replace")
        elif field == b"data":
            data.append(value)
    return (name, b"\n".join(data)) if data else None


class AnthropicStreamTranslator:
    """Feed Anthropic SSE bytes in; get OpenAI SSE frames out. `usage` and `finished` are readable at any time."""

    def __init__(self, public_model: str, include_usage: bool) -> None:
        self.public_model = public_model
        self.include_usage = include_usage
        self.usage = TokenUsage()
        self.finished = False
        self.error: dict[str, Any] | None = None
        self._reader = SseEventReader()
        self._id = "chatcmpl-anthropic"
        self._created = int(time.time())
        self._role_sent = False
        self._tool_indexes: dict[int, int] = {}

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        for name, raw in self._reader.feed(data):
            if self.finished:
                break
            frames.extend(self._translate(name, raw))
        return frames

    def finish(self) -> list[bytes]:
        """The upstream closed. Without a message_stop the answer is incomplete, so the client must not see [DONE]."""
        if self.finished:
            return []
        return self._fail(
            openai_error(
                "the Anthropic upstream stream ended before message_stop, so this answer is incomplete; "
                "retry the request"
            )
        )

    def _translate(self, name: str, raw: bytes) -> list[bytes]:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            return self._fail(openai_error(f"the Anthropic upstream sent an unreadable {name!r} stream event"))
        kind = str(event.get("type") or name)
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []  # ping, and event types added later, are skipped
        try:
            return handler(self, event)
        except (AttributeError, TypeError, ValueError):  # a field of the wrong JSON type in the upstream's event
            return self._fail(openai_error(f"the Anthropic upstream sent a {kind!r} stream event of the wrong shape"))

    def _fail(self, error: dict[str, Any]) -> list[bytes]:
        self.finished = True
        self.error = error
        return [sse_frame(error)]

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.public_model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: null on every chunk but the last
        return sse_frame(chunk)

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        return [self._chunk(delta)]

    def _on_message_start(self, event: dict[str, Any]) -> list[bytes]:
        message = event.get("message") or {}
        if message.get("id"):
            self._id = f"chatcmpl-{message['id']}"
        usage = message.get("usage") or {}
        self.usage.prompt_tokens = prompt_tokens(usage)
        self.usage.completion_tokens = int(usage.get("output_tokens") or 0)
        return self._delta({"content": ""})

    def _on_block_start(self, event: dict[str, Any]) -> list[bytes]:
        block = event.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return self._delta({"content": block["text"]})
        if block.get("type") != "tool_use":
            return []
        position = self._tool_indexes.setdefault(int(event.get("index") or 0), len(self._tool_indexes))
        call = {
            "index": position,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return self._delta({"tool_calls": [call]})

    def _on_block_delta(self, event: dict[str, Any]) -> list[bytes]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return self._delta({"content": delta.get("text") or ""})
        if delta.get("type") == "input_json_delta":
            position = self._tool_indexes.get(int(event.get("index") or 0))
            if position is None:
                return []
            return self._delta(
                {"tool_calls": [{"index": position, "function": {"arguments": delta.get("partial_json") or ""}}]}
            )
        return []  # thinking, signature and citation deltas have no chat-completions counterpart

    def _on_message_delta(self, event: dict[str, Any]) -> list[bytes]:
        usage = event.get("usage") or {}
        if "output_tokens" in usage:
            self.usage.completion_tokens = int(usage["output_tokens"] or 0)
        if usage.get("input_tokens") is not None:
            self.usage.prompt_tokens = prompt_tokens(usage)
        stop_reason = (event.get("delta") or {}).get("stop_reason")
        return [self._chunk({}, finish_reason(stop_reason))]

    def _on_message_stop(self, _event: dict[str, Any]) -> list[bytes]:
        self.finished = True
        frames = []
        if self.include_usage:
            frames.append(
                sse_frame(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self.public_model,
                        "choices": [],
                        "usage": self.usage.as_openai(),
                    }
                )
            )
        frames.append(DONE_FRAME)
        return frames

    def _on_error(self, event: dict[str, Any]) -> list[bytes]:
        return self._fail(error_from_anthropic(event))


_HANDLERS = {
    "message_start": AnthropicStreamTranslator._on_message_start,
    "content_block_start": AnthropicStreamTranslator._on_block_start,
    "content_block_delta": AnthropicStreamTranslator._on_block_delta,
    "message_delta": AnthropicStreamTranslator._on_message_delta,
    "message_stop": AnthropicStreamTranslator._on_message_stop,
    "error": AnthropicStreamTranslator._on_error,
}
