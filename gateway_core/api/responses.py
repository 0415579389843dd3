"""JSON responses with orjson, and the OpenAI error shape for errors the handlers raise or routes that don't exist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from gateway_core.api.admin_models import validation_error
from gateway_core.api.guard import internal_error_handler
from gateway_core.contracts.errors import GatewayError


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


async def gateway_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, GatewayError)
    return error.to_response()


async def invalid_input_handler(request: Request, error: Exception) -> Response:
    """A body that does not validate (a key spec, a provider configuration): 400 naming the first bad field."""
    assert isinstance(error, ValidationError)
    return validation_error(error).to_response()


async def http_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    status = error.status_code
    path = request.url.path
    message = f"{request.method} {path}: {error.detail}"
    stripped = path.rstrip("/")
    if (
        status == 404
        and stripped != path
        and any(getattr(route, "path", None) == stripped for route in request.app.routes)
    ):
        message += f"; the route is {stripped}, without the trailing slash"
    return GatewayError(status, message, code="not_found" if status == 404 else None).to_response()


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
EXCEPTION_HANDLERS: Mapping[Any, ExceptionHandler] = {
    GatewayError: gateway_error_handler,
    ValidationError: invalid_input_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,  # Starlette answers with it, then re-raises for the guard to log
}


def json_app(routes: Sequence[BaseRoute]) -> Starlette:
    """A Starlette app whose every error is JSON in OpenAI's shape (so no slash-redirect with an empty body)."""
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    app.router.redirect_slashes = False
    return app
