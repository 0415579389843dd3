"""Health probes and discovery: what each provider type says about readiness, models and capacity."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from .config import ProviderConfig
from .endpoints import api_base, auth_headers
from .runtime import Health

PROBE_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


@dataclass(frozen=True)
class ProbeResult:
    health: Health
    detail: str
    models: dict[str, str] = field(default_factory=dict)
    capacity: int | None = None


async def probe(config: ProviderConfig, client: httpx.AsyncClient) -> ProbeResult:
    """Never raises: an unreachable or broken provider is a result, with the reason."""
    try:
        if config.type == "llama-server":
            return await _probe_llama_server(config, client)
        if config.type == "ollama":
            return await _probe_ollama(config, client)
        return await _probe_model_list(config, client)
    except httpx.TimeoutException:
        return ProbeResult("down", f"{config.base_url} did not answer within {PROBE_TIMEOUT.read:.0f}s")
    except httpx.TransportError as error:
        return ProbeResult("down", f"cannot reach {config.base_url}: {error or type(error).__name__}")
    except (ValueError, KeyError, TypeError) as error:
        return ProbeResult("down", f"{config.base_url} answered something unexpected: {error}")


async def _probe_llama_server(config: ProviderConfig, client: httpx.AsyncClient) -> ProbeResult:
    headers = auth_headers(config)
    health = await client.get(config.base_url + "/health", headers=headers, timeout=PROBE_TIMEOUT)
    if health.status_code == 503:
        return ProbeResult("loading", "llama-server is loading its model")
    if health.status_code != 200:
        return ProbeResult("down", f"/health answered HTTP {health.status_code}")
    listed = await client.get(api_base(config) + "/models", headers=headers, timeout=PROBE_TIMEOUT)
    listed.raise_for_status()
    models = {entry["id"]: entry["id"] for entry in listed.json().get("data", [])}
    props = await client.get(config.base_url + "/props", headers=headers, timeout=PROBE_TIMEOUT)
    capacity = props.json().get("total_slots") if props.status_code == 200 else None
    return ProbeResult("ready", f"{capacity or '?'} slots", models=models, capacity=capacity)


async def _probe_ollama(config: ProviderConfig, client: httpx.AsyncClient) -> ProbeResult:
    tags = await client.get(config.base_url + "/api/tags", timeout=PROBE_TIMEOUT)
    if tags.status_code != 200:
        return ProbeResult("down", f"/api/tags answered HTTP {tags.status_code}")
    models = {entry["name"]: entry["name"] for entry in tags.json().get("models", [])}
    return ProbeResult("ready", f"{len(models)} models", models=models)


async def _probe_model_list(config: ProviderConfig, client: httpx.AsyncClient) -> ProbeResult:
    headers = auth_headers(config)
    if config.type == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        url = config.base_url + "/v1/models"
    else:
        url = api_base(config) + "/models"
    listed = await client.get(url, headers=headers, timeout=PROBE_TIMEOUT)
    if listed.status_code in (401, 403):
        return ProbeResult("down", f"{url} refused the upstream key (HTTP {listed.status_code}); check it")
    if listed.status_code != 200:
        if config.models and listed.status_code == 404:
            return ProbeResult("ready", "reachable; no model list, using the configured models")
        return ProbeResult("down", f"{url} answered HTTP {listed.status_code}")
    models = {entry["id"]: entry["id"] for entry in listed.json().get("data", [])}
    return ProbeResult("ready", f"{len(models)} models", models=models)
