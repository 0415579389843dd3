"""One wire adapter per provider type: how to send a request and read what comes back.

Each implements contracts/adapter.py's `Adapter`; `adapter_for` picks the one a provider's type speaks.
"""

from __future__ import annotations

import orjson

from gateway_core.contracts.adapter import Adapter, UpstreamCall, Usage
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.request import ParsedRequest, encode_body
from gateway_core.providers.anthropic import (
    AnthropicTranslationError,
    from_anthropic_response,
    request_headers,
    to_anthropic_request,
)
from gateway_core.providers.anthropic_stream import AnthropicStreamTranslator
from gateway_core.providers.config import ProviderConfig
from gateway_core.providers.endpoints import route_url
from gateway_core.providers.openai_compat import OpenAICompatAdapter


class AnthropicStream:
    """AnthropicStreamTranslator as a `StreamRelay`, the face PassthroughStream has too."""

    def __init__(self, public_model: str, wants_usage: bool) -> None:
        self._translator = AnthropicStreamTranslator(public_model, wants_usage)
        self.content_frames = 0
        self.has_content = False

    @property
    def usage(self) -> Usage:
        return Usage(self._translator.usage.prompt_tokens, self._translator.usage.completion_tokens)

    @property
    def finished(self) -> bool:
        return self._translator.finished and self._translator.error is None

    def feed(self, chunk: bytes) -> bytes:
        frames = self._translator.feed(chunk)
        for frame in frames:
            if b'"content":"' in frame:
                self.has_content = True
                self.content_frames += 1
        return b"".join(frames)

    def finish(self) -> bytes:
        return b"".join(self._translator.finish())


class AnthropicAdapter:
    """An `Adapter` for Anthropic's Messages API: chat completions translated both ways."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def build(self, parsed: ParsedRequest, upstream_model: str) -> UpstreamCall:
        if parsed.route != "chat":
            raise GatewayError(
                400, f"provider '{self.config.name}' (anthropic) serves chat completions only", code="unsupported_route"
            )
        try:
            body = to_anthropic_request(parsed.body, upstream_model)
        except AnthropicTranslationError as error:
            raise GatewayError(400, str(error), param=error.param, code="unsupported_for_anthropic") from error
        return UpstreamCall(
            route_url(self.config, "chat"), encode_body(body), request_headers(self.config.upstream_key())
        )

    def response(self, raw: bytes, public_model: str) -> tuple[bytes, Usage]:
        try:
            translated = from_anthropic_response(orjson.loads(raw), public_model)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as error:  # not a Messages answer
            raise GatewayError(
                502,
                f"provider '{self.config.name}' (anthropic) answered with a body that is not a Messages API "
                f"response ({type(error).__name__}); check its base URL points at the Anthropic API",
                code="upstream_bad_answer",
            ) from error
        usage = translated["usage"]
        return orjson.dumps(translated), Usage(usage["prompt_tokens"], usage["completion_tokens"])

    def stream(self, public_model: str, upstream_model: str, wants_usage: bool) -> AnthropicStream:
        return AnthropicStream(public_model, wants_usage)


def adapter_for(config: ProviderConfig) -> Adapter:
    return AnthropicAdapter(config) if config.type == "anthropic" else OpenAICompatAdapter(config)
