"""Reading and checking a public API request: body cap, one JSON parse, the OpenAI fields checked, then what
routing needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.openai_request import validate


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    route: str  # "chat" | "completions" | "embeddings"
    body: dict[str, Any]
    model: str
    stream: bool
    wants_usage: bool  # the client asked for usage in the stream (stream_options.include_usage)
    media: Mapping[str, str]  # input kinds beyond text ("vision", "audio") -> the first part holding one


async def read_body(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise GatewayError(413, f"request body is {declared} bytes; the limit is {cap} bytes", code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise GatewayError(413, f"request body exceeds the limit of {cap} bytes", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse(route: str, raw: bytes) -> ParsedRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise GatewayError(400, f"request body is not valid UTF-8 JSON: {error}", code="invalid_json") from error
    if not isinstance(body, dict):
        raise GatewayError(400, "request body must be a JSON object", code="invalid_json")
    media = validate(route, body)
    stream = route != "embeddings" and body.get("stream") is True
    options = body.get("stream_options")
    wants_usage = stream and options is not None and options.get("include_usage") is True
    return ParsedRequest(
        route=route, body=body, model=body["model"], stream=stream, wants_usage=wants_usage, media=media
    )


def encode_body(body: dict[str, Any]) -> bytes:
    """The body to send upstream. orjson reads JSON nested up to 1,024 levels but writes at most 254."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as error:  # the only cause for a body that was read as JSON: too deep
        raise GatewayError(
            400,
            f"the request body cannot be forwarded ({error}): it nests arrays or objects more than 254 levels "
            "deep; flatten it",
            code="too_deeply_nested",
        ) from error
