"""What an operator configures for a provider. Validated on the way in; the upstream key never leaves."""

from __future__ import annotations

import os
import re
from typing import get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway_core.contracts.views import ProviderPublicView, ProviderType

PROVIDER_TYPES: tuple[ProviderType, ...] = get_args(ProviderType)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ProviderType
    base_url: str
    # The upstream credential: the name of an environment variable, or the value itself.
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    # Public model name -> upstream model name. Empty means "discover from the provider".
    models: dict[str, str] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-1000, le=1000)
    weight: int = Field(default=1, ge=1, le=1000)
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    enabled: bool = True
    # Drained for maintenance: no new requests or jobs until undrained. Kept here so a restart keeps it; set it
    # through ProviderRegistry.drain and undrain, which leave the requests in flight running.
    draining: bool = False
    # The GPUs of this box that this provider's llama-server runs on, for GPU time and energy per request.
    # Corral's own deployments are known without it; this is for a server it did not deploy.
    gpus: list[int] | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return name

    @field_validator("base_url")
    @classmethod
    def _valid_url(cls, url: str) -> str:
        example = "such as http://127.0.0.1:8080"
        if any(char.isspace() or not char.isprintable() for char in url):
            raise ValueError(f"{url!r} has spaces or control characters; percent-encode them in a URL {example}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL {example}")
        try:
            port = parts.port
        except ValueError:  # past 65535, or not a number
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"{url!r} has no valid port (1-65535); give a URL {example}")
        return url.rstrip("/")

    @field_validator("models")
    @classmethod
    def _named_models(cls, models: dict[str, str]) -> dict[str, str]:
        if any(not public or not upstream for public, upstream in models.items()):
            raise ValueError("every model needs a public name and an upstream name, neither empty")
        return models

    @field_validator("gpus")
    @classmethod
    def _valid_gpus(cls, gpus: list[int] | None) -> list[int] | None:
        if gpus is None:
            return None
        if not gpus:
            raise ValueError("list the GPU indices the server runs on, such as [0, 1]; leave gpus out (null) for none")
        if any(index < 0 for index in gpus):
            raise ValueError(f"GPU indices are 0 or more, as nvidia-smi numbers them; got {gpus}")
        if len(set(gpus)) != len(gpus):
            raise ValueError(f"each GPU index may appear once; got {gpus}")
        return gpus

    @field_validator("api_key_env")
    @classmethod
    def _valid_env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_VAR.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
        return name

    @model_validator(mode="after")
    def _one_key_source(self) -> ProviderConfig:
        if self.api_key_env and self.api_key:
            raise ValueError("give the upstream key either as api_key_env or as api_key, not both")
        return self

    def upstream_key(self) -> str | None:
        """The credential to send upstream, read from the environment at call time when configured so."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env)
        return None

    def public_view(self) -> ProviderPublicView:
        """What the admin API may show: every field but the key, and at most the key's last 4 characters."""
        key = self.upstream_key()
        return {
            "name": self.name,
            "type": self.type,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "models": dict(self.models),
            "priority": self.priority,
            "weight": self.weight,
            "max_concurrency": self.max_concurrency,
            "enabled": self.enabled,
            "draining": self.draining,
            "gpus": list(self.gpus) if self.gpus is not None else None,
            "api_key_hint": f"…{key[-4:]}" if key and len(key) >= 8 else ("set" if key else None),
        }

    def stored(self) -> dict[str, object]:
        """The record kept in config.json (mode 0600), which is the one place the key value lives."""
        data = self.model_dump(exclude={"api_key"})
        data["api_key"] = self.api_key.get_secret_value() if self.api_key else None
        return data
