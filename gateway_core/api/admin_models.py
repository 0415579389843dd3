"""Reading the admin API's request bodies, and turning pydantic's validation errors into a 400 that names the field.

What each body may hold is defined elsewhere: contracts/admin_requests.py (keys), providers/config.py (providers).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request

from gateway_core.contracts.errors import GatewayError


async def read_json(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise GatewayError(400, f"body is not valid JSON: {error}", code="invalid_json") from error
    if not isinstance(data, dict):
        raise GatewayError(400, "body must be a JSON object", code="invalid_json")
    return data


def validation_error(error: ValidationError, prefix: str | None = None) -> GatewayError:
    """A 400 naming the first bad field; `prefix` is where the validated object sits in the body (systemd)."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in ((prefix,) if prefix else ()) + tuple(first["loc"])) or None
    message = first["msg"].removeprefix("Value error, ")
    return GatewayError(400, f"{field}: {message}" if field else message, param=field, code="invalid_field")
