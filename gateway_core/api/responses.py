"""JSON responses with orjson, and the OpenAI error shape for routes that don't exist."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway_core.contracts.errors import GatewayError


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


async def gateway_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, GatewayError)
    return error.to_response()


async def http_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    status = error.status_code
    message = f"{request.method} {request.url.path}: {error.detail}"
    return GatewayError(status, message, code="not_found" if status == 404 else None).to_response()


EXCEPTION_HANDLERS = {GatewayError: gateway_error_handler, HTTPException: http_error_handler}
