"""What the admin API accepts, validated so a bad field gets a 400 that names it."""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from gateway_core.contracts.errors import GatewayError


class KeySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    expires_in_days: float | None = Field(default=None, gt=0)

    def settings(self) -> dict[str, Any]:
        return {
            "models": tuple(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_concurrency": self.max_concurrency,
            "expires_at": time.time() + self.expires_in_days * 86400 if self.expires_in_days else None,
        }


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64)
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    expires_in_days: float | None = Field(default=None, gt=0)


async def read_json(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise GatewayError(400, f"body is not valid JSON: {error}", code="invalid_json") from error
    if not isinstance(data, dict):
        raise GatewayError(400, "body must be a JSON object", code="invalid_json")
    return data


def validation_error(error: ValidationError) -> GatewayError:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    return GatewayError(400, f"{field}: {message}" if field else message, param=field, code="invalid_field")
