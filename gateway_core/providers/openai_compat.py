"""The adapter for llama-server, Ollama and OpenAI-compatible APIs: pass bytes through, count usage."""

from __future__ import annotations

from typing import Any

import orjson

from gateway_core.contracts.adapter import UpstreamCall, Usage
from gateway_core.contracts.request import ParsedRequest, encode_body
from gateway_core.contracts.sse import DONE, FrameSplitter, error_frame
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.endpoints import auth_headers, route_url


def usage_of(payload: dict[str, Any]) -> Usage:
    """The token counts of an OpenAI completion object or usage chunk; whatever is not a count reads as 0."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class PassthroughStream:
    """Relays an OpenAI-style SSE stream frame by frame, reading only the usage frame.

    The gateway always asks upstream for usage; when the client did not, the usage frame is dropped.
    """

    def __init__(self, public_model: str, upstream_model: str, wants_usage: bool) -> None:
        self._splitter = FrameSplitter()
        self._wants_usage = wants_usage
        # Rewriting the model name is a byte replace, and only when the names differ.
        self._rename = (
            (b'"model":"' + upstream_model.encode() + b'"', b'"model":"' + public_model.encode() + b'"')
            if upstream_model != public_model
            else None
        )
        self.usage = Usage()
        self.finished = False
        self.content_frames = 0
        self.has_content = False

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for frame in self._splitter.feed(chunk):
            if frame.startswith(DONE):
                self.finished = True
                out.append(frame + b"\n\n")
                continue
            if b'"usage"' in frame and b'"completion_tokens"' in frame:
                usage_only = self._read_usage(frame)
                if usage_only and not self._wants_usage:
                    continue
            elif b'"error"' in frame and frame.startswith(b'data: {"error"'):
                self.finished = True  # the upstream reported an error itself; pass it on as the end
            else:
                self.content_frames += 1
                self.has_content = self.has_content or b'"content":"' in frame or b'"text":"' in frame
            if self._rename:
                frame = frame.replace(*self._rename)
            out.append(frame + b"\n\n")
        return b"".join(out)

    def _read_usage(self, frame: bytes) -> bool:
        """Record usage from the frame; True when the frame carries nothing else (no choices)."""
        try:
            payload = orjson.loads(frame[frame.index(b"{") :])
        except (ValueError, orjson.JSONDecodeError):
            return False
        if not isinstance(payload, dict):
            return False
        self.usage = usage_of(payload)
        return not payload.get("choices")

    def finish(self) -> bytes:
        if self.finished:
            return b""
        return error_frame("the upstream ended the stream before it finished", code="upstream_stream_cut")


class OpenAICompatAdapter:
    """An `Adapter` for upstreams that speak OpenAI's API already: the body goes through, renamed only."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def build(self, parsed: ParsedRequest, upstream_model: str) -> UpstreamCall:
        body: dict[str, Any] = dict(parsed.body)
        body["model"] = upstream_model
        if parsed.stream:  # stream_options is an object or null: contracts/openai_request.py checked it
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True  # so tokens are always counted
            body["stream_options"] = options
        headers = {"content-type": "application/json", **auth_headers(self.config)}
        return UpstreamCall(route_url(self.config, parsed.route), encode_body(body), headers)

    def response(self, raw: bytes, public_model: str) -> tuple[bytes, Usage]:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw, Usage()
        if not isinstance(payload, dict):  # not a completion object: passed on as it came, nothing counted
            return raw, Usage()
        counted = usage_of(payload)
        if payload.get("model") != public_model:
            payload["model"] = public_model
            raw = orjson.dumps(payload)
        return raw, counted

    def stream(self, public_model: str, upstream_model: str, wants_usage: bool) -> PassthroughStream:
        return PassthroughStream(public_model, upstream_model, wants_usage)
