"""Health probes and discovery: what each provider type says about readiness, models and capacity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import aiohttp
import orjson

from gateway_core.contracts.views import Health, RouterModelView

from . import router_listing
from .config import ProviderConfig
from .endpoints import api_base, auth_headers
from .upstream import PROBE_TIMEOUT, TRANSPORT_ERRORS, describe


@dataclass(frozen=True)
class ProbeResult:
    health: Health
    detail: str
    models: dict[str, str] = field(default_factory=dict)
    capacity: int | None = None
    media: frozenset[str] | None = None  # the input kinds beyond text it takes ("vision", "audio"); None: unknown
    router_models: list[RouterModelView] | None = None  # a router-mode llama-server's models; None: not a router
    raw: str | None = None  # the error as its library put it, for whoever needs more than `detail`'s words


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        if self.status != 200:
            raise ValueError(f"HTTP {self.status}")
        return orjson.loads(self.body)


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> _Answer:
    async with session.get(url, headers=headers, timeout=PROBE_TIMEOUT) as response:
        return _Answer(response.status, await response.read())


async def probe(config: ProviderConfig, session: aiohttp.ClientSession) -> ProbeResult:
    """Never raises: an unreachable or broken provider is a result, with the reason."""
    try:
        if config.type == "llama-server":
            return await _probe_llama_server(config, session)
        if config.type == "ollama":
            return await _probe_ollama(config, session)
        return await _probe_model_list(config, session)
    except TimeoutError:
        return ProbeResult("down", f"{config.base_url} did not answer within {PROBE_TIMEOUT.total:.0f}s")
    except TRANSPORT_ERRORS as error:
        raw = f"{type(error).__name__}: {error}"
        return ProbeResult("down", f"cannot reach {config.base_url}: {describe(error)}", raw=raw)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return ProbeResult("down", f"{config.base_url} answered something unexpected: {error}")


async def _probe_llama_server(config: ProviderConfig, session: aiohttp.ClientSession) -> ProbeResult:
    headers = auth_headers(config)
    health = await _get(session, config.base_url + "/health", headers)
    if health.status == 503:
        return ProbeResult("loading", "llama-server is loading its model")
    if health.status != 200:
        return ProbeResult("down", f"/health answered HTTP {health.status}")
    listed = await _get(session, api_base(config) + "/models", headers)
    entries = listed.json().get("data", [])
    models = public_names([entry["id"] for entry in entries])
    props = await _get(session, config.base_url + "/props", headers)
    settings = props.json() if props.status == 200 else {}
    if router_listing.is_router(settings, entries):
        # Its /health is the router's own; each model's status and slots are in the list it just gave.
        views = router_listing.model_views(entries)
        per_model = await router_listing.model_slots(session, config.base_url, headers, entries)
        slots = router_listing.router_capacity(per_model, settings.get("max_instances"))
        detail = router_listing.summary_detail(views, slots)
        return ProbeResult("ready", detail, models=models, capacity=slots, router_models=views)
    capacity = settings.get("total_slots")
    modalities = settings.get("modalities")  # {"vision": false, "audio": false}: what its --mmproj gives it
    media = frozenset(kind for kind, on in modalities.items() if on is True) if isinstance(modalities, dict) else None
    return ProbeResult("ready", f"{capacity or '?'} slots", models=models, capacity=capacity, media=media)


def public_names(ids: list[str]) -> dict[str, str]:
    """Public name -> the id llama-server listed. Started without --alias, llama-server lists its model as the
    file's path (/srv/models/tiny.gguf): the file's stem (tiny) is offered as the public name too, unless another
    listed model is called that or shares the stem; the path itself stays accepted."""
    stems = Counter(PurePosixPath(id_).stem for id_ in ids if "/" in id_)
    models: dict[str, str] = {}
    for id_ in ids:
        stem = PurePosixPath(id_).stem
        if "/" in id_ and stem and stem not in ids and stems[stem] == 1:
            models[stem] = id_
    return models | {id_: id_ for id_ in ids}


async def _probe_ollama(config: ProviderConfig, session: aiohttp.ClientSession) -> ProbeResult:
    tags = await _get(session, config.base_url + "/api/tags")
    if tags.status != 200:
        return ProbeResult("down", f"/api/tags answered HTTP {tags.status}")
    models = {entry["name"]: entry["name"] for entry in tags.json().get("models", [])}
    return ProbeResult("ready", f"{len(models)} models", models=models)


async def _probe_model_list(config: ProviderConfig, session: aiohttp.ClientSession) -> ProbeResult:
    headers = auth_headers(config)
    if config.type == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        url = config.base_url + "/v1/models"
    else:
        url = api_base(config) + "/models"
    listed = await _get(session, url, headers)
    if listed.status in (401, 403):
        return ProbeResult("down", f"{url} refused the upstream key (HTTP {listed.status}); check it")
    if listed.status != 200:
        if config.models and listed.status == 404:
            return ProbeResult("ready", "reachable; no model list, using the configured models")
        return ProbeResult("down", f"{url} answered HTTP {listed.status}")
    models = {entry["id"]: entry["id"] for entry in listed.json().get("data", [])}
    return ProbeResult("ready", f"{len(models)} models", models=models)
