"""Errors in OpenAI's shape, with the status code that makes the official SDKs raise the matching exception."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

# status -> OpenAI error type, as the SDKs map them (BadRequestError, AuthenticationError, ...).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class GatewayError(Exception):
    """An error a client can act on: what failed and what to do, with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": ERROR_TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def to_response(self, extra_headers: dict[str, str] | None = None) -> Response:
        headers = {**self.headers, **(extra_headers or {})}
        return Response(
            orjson.dumps(self.body()), status_code=self.status, media_type="application/json", headers=headers
        )


def upstream_error_body(status: int, raw: bytes, provider: str) -> bytes:
    """A provider's own error answer (a 4xx passed on to the client) in OpenAI's shape.

    The provider's message and type are kept; llama-server's numeric `code`, a missing `param`, or a body that
    is not OpenAI's error object at all (plain text, HTML from a proxy) are put into the shape the SDKs parse.
    """
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):  # {"error": "message"}, as Ollama and some proxies answer
        error = {"message": error}
    if not isinstance(error, dict):
        text = raw[:300].decode(errors="replace").strip() or "(an empty body)"
        return orjson.dumps(GatewayError(status, f"provider '{provider}' answered HTTP {status}: {text}").body())
    message, kind, param, code = (error.get(name) for name in ("message", "type", "param", "code"))
    return orjson.dumps(
        {
            "error": {
                "message": message
                if isinstance(message, str) and message
                else f"provider '{provider}' answered HTTP {status}",
                "type": kind if isinstance(kind, str) and kind else ERROR_TYPES.get(status, "invalid_request_error"),
                "param": param if isinstance(param, str) else None,
                "code": code if isinstance(code, str) or code is None else str(code),
            }
        }
    )
